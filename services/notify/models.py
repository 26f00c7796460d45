"""Notify's tables, in its own schema."""
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID

from runtime.db import inbox_table, outbox_table

SCHEMA = "notify"
metadata = MetaData(schema=SCHEMA)
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

notifications = Table(
    "notifications",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("referral_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("case_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("channel", String(10), nullable=False),
    Column("recipient", String(320), nullable=False),  # an agency's duty address, never a victim's
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("provider_code", String(100)),
    Column("provider_ref", String(200)),
    Column("trace", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    UniqueConstraint("referral_id", "channel", "recipient", name="uq_notification_target"),
)
