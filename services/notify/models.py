"""Notify's tables, in its own schema."""
from sqlalchemy import (
    Boolean, Column, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData, SmallInteger, String, Table, Text,
    UniqueConstraint, func, text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from runtime.db import inbox_table, outbox_table

SCHEMA = "notify"
metadata = MetaData(schema=SCHEMA)
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

# One message to one recipient on one channel. Its status follows the named sets of delivery/states.py:
# created → sending → sent → delivered | temporary-failure | permanent-failure | technical-failure.
notifications = Table(
    "notifications",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("referral_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("case_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("channel", String(10), nullable=False),  # email | sms | webhook
    Column("recipient", String(320), nullable=False),  # an agency's duty address, number or URL, never a victim's
    Column("subject", String(300), nullable=False),  # empty for SMS and webhooks
    Column("body", Text, nullable=False),  # the rendered text; for a webhook, the CloudEvent's JSON
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("provider_code", String(100)),
    Column("provider_ref", String(200)),
    Column("trace", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    # What caused it: the consumed event (or a resend request), so a redelivered event makes nothing new.
    Column("source_id", UUID(as_uuid=True)),
    Column("kind", String(40), nullable=False, server_default="referral.created"),  # the message kind
    Column("language", String(5), nullable=False, server_default="vi"),
    Column("template_id", UUID(as_uuid=True)),
    Column("template_version", Integer),
    Column("priority", SmallInteger, nullable=False, server_default="2"),  # 0 emergency, 1 high, 2 normal
    Column("segments", SmallInteger),  # SMS parts billed
    Column("encoding", String(8)),  # SMS: gsm7 | ucs2
    Column("provider", String(40)),  # which provider took the last attempt
    Column("webhook_endpoint_id", UUID(as_uuid=True)),
    Column("retry_until", DateTime(timezone=True)),  # retries stop here, whatever the attempts
    Column("delivered_at", DateTime(timezone=True)),
    Column("resend_of", UUID(as_uuid=True)),
    # While a worker calls the provider: set at the claim, cleared with the answer. A lease that ran out
    # means the worker died mid-send: the message is reconciled with the provider, never sent blindly again.
    Column("leased_until", DateTime(timezone=True)),
    # What the message was rendered from (reference, urgency, place, deadline, link; never personal data):
    # a fallback to another channel and the later messages about the referral are rendered from it.
    Column("context", JSONB),
    UniqueConstraint("source_id", "channel", "recipient", name="uq_notification_source_target"),
)
# The dispatcher's claim: what is due, emergencies first.
Index("ix_notifications_due", notifications.c.priority, notifications.c.next_attempt_at,
      postgresql_where=notifications.c.status.in_(["created", "sending"]))
Index("ix_notifications_provider_ref", notifications.c.provider, notifications.c.provider_ref)

# Message templates: one per kind × channel × language, versioned. A new version is a new row; the
# highest version is in force; a notification records the version it was rendered from.
templates = Table(
    "templates",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("kind", String(40), nullable=False),  # referral.created, referral.reminder, …
    Column("channel", String(10), nullable=False),  # email | sms
    Column("language", String(5), nullable=False),  # vi | en
    Column("version", Integer, nullable=False),
    Column("subject", Text, nullable=False, server_default=""),  # email only
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("kind", "channel", "language", "version", name="uq_template_version"),
)

# Agency systems that want an HTTP call per referral event (Standard Webhooks). Secrets are encrypted
# at rest; several may be valid at once while one is rotated out.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("agency_unit_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("url", String(2000), nullable=False),
    Column("description", String(500), nullable=False, server_default=""),
    Column("active", Boolean, nullable=False, server_default="true"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

webhook_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("endpoint_id", UUID(as_uuid=True), ForeignKey(webhook_endpoints.c.id), nullable=False, index=True),
    Column("secret", LargeBinary, nullable=False),  # runtime.crypto ciphertext of the whsec_… secret
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True)),  # set when rotated out: still signs until then
)
