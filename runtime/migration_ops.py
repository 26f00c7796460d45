"""Migration steps every service shares. Each function is frozen once released: a later change to
the outbox or inbox gets a new function (create_outbox_v2, ...), so old migrations never change."""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


def create_outbox_v1(schema: str) -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("trace", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq"),
        schema=schema,
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"], schema=schema)
    op.create_index("ix_outbox_unpublished", "outbox", ["seq"], schema=schema,
                    postgresql_where=sa.text("published_at IS NULL"))


def drop_outbox_v1(schema: str) -> None:
    op.drop_table("outbox", schema=schema)


def create_inbox_v1(schema: str) -> None:
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        schema=schema,
    )


def drop_inbox_v1(schema: str) -> None:
    op.drop_table("inbox", schema=schema)
