"""Cases with encrypted free text, and the outbox.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 19:26:32.133428
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence('case_number_seq', schema='intake')))
    op.create_table('cases',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('case_number', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('province_code', sa.String(length=2), nullable=False),
    sa.Column('commune_code', sa.String(length=5), nullable=True),
    sa.Column('immediate_danger', sa.Boolean(), nullable=False),
    sa.Column('child_victim', sa.Boolean(), nullable=False),
    sa.Column('urgency', sa.String(length=20), nullable=False),
    sa.Column('urgency_floor', sa.String(length=20), nullable=False),
    sa.Column('urgency_reason', sa.LargeBinary(), nullable=True),
    sa.Column('narrative', sa.LargeBinary(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_number'),
    sa.UniqueConstraint('idempotency_key'),
    schema='intake'
    )
    op.create_index(op.f('ix_intake_cases_province_code'), 'cases', ['province_code'], unique=False, schema='intake')
    op.create_table('outbox',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('topic', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('trace', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq'),
    schema='intake'
    )
    op.create_index('ix_outbox_published_at', 'outbox', ['published_at'], unique=False, schema='intake')
    op.create_index('ix_outbox_unpublished', 'outbox', ['seq'], unique=False, schema='intake', postgresql_where=sa.text('published_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_outbox_unpublished', table_name='outbox', schema='intake', postgresql_where=sa.text('published_at IS NULL'))
    op.drop_index('ix_outbox_published_at', table_name='outbox', schema='intake')
    op.drop_table('outbox', schema='intake')
    op.drop_index(op.f('ix_intake_cases_province_code'), table_name='cases', schema='intake')
    op.drop_table('cases', schema='intake')
    op.execute(sa.schema.DropSequence(sa.Sequence('case_number_seq', schema='intake')))
