"""Referral's tables, in its own schema: the agency directory and the referrals made."""
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from runtime.db import inbox_table, outbox_table

SCHEMA = "referral"
metadata = MetaData(schema=SCHEMA)
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

# The directory, after Open Referral HSDS: a unit, its service area, what it offers, when and how to
# reach it. Contacts and opening hours are small lists read with their unit, so they live on it.
agency_units = Table(
    "agency_units",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(300), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("level", String(20), nullable=False),
    Column("parent_code", String(64)),
    Column("province_code", String(2), index=True),
    Column("commune_code", String(5)),
    Column("region", String(20)),
    Column("country", String(2)),
    Column("services", ARRAY(String(40)), nullable=False, server_default="{}"),
    Column("languages", ARRAY(String(10)), nullable=False, server_default="{vi}"),
    Column("opening_hours", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("last_verified", Date),
    Column("contacts", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("source", String(300), nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Bumped in the transaction of every directory change: a referral process reloads its in-memory
# directory when the number it last saw is behind.
directory_state = Table(
    "directory_state",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("version", BigInteger, nullable=False),
)

referrals = Table(
    "referrals",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("case_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("case_number", String(32), nullable=False),
    Column("agency_unit_id", UUID(as_uuid=True), ForeignKey(agency_units.c.id), nullable=False),
    Column("status", String(20), nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("province_code", String(2), nullable=False),
    Column("match_reason", String(500), nullable=False),
    Column("rule_ids", ARRAY(String(60)), nullable=False, server_default="{}"),
    Column("trace", JSONB, nullable=False, server_default=text("'[]'::jsonb")),  # why this unit was chosen
    Column("identity_shared", Boolean, nullable=False, server_default="false"),  # the consent policy's answer
    Column("acknowledge_by", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Lifecycle: created → notified → acknowledged → accepted | declined → closed (schemas ReferralStatus).
    Column("version", Integer, nullable=False, server_default="1"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("notified_at", DateTime(timezone=True)),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("accepted_at", DateTime(timezone=True)),
    Column("declined_at", DateTime(timezone=True)),
    Column("decline_reason", String(30)),
    Column("closed_at", DateTime(timezone=True)),
    Column("cause", String(20), nullable=False, server_default="matched"),  # matched | escalation | reroute
    Column("previous_referral_id", UUID(as_uuid=True)),
    # The durable timer: the next deadline step (reminder, then escalation) and when it is due. Scanned
    # with FOR UPDATE SKIP LOCKED, so two replicas never fire one step twice.
    Column("due_step", String(20)),  # remind | escalate | None when nothing is pending
    Column("due_at", DateTime(timezone=True)),
    Column("reminded_at", DateTime(timezone=True)),
    Column("escalated_at", DateTime(timezone=True)),
    # The contacts notify was asked to alert, as [{channel, address}]: the first of each channel, then one
    # more per failed alert (referrals/delivery.py). NULL: made before v1.1, when every contact was alerted.
    Column("alerted", JSONB),
    UniqueConstraint("case_id", "agency_unit_id", name="uq_referral_case_unit"),
)
Index("ix_referrals_due", referrals.c.due_at, postgresql_where=referrals.c.due_at.is_not(None))
# An agency's inbox: its units' referrals, newest first.
Index("ix_referrals_unit_created", referrals.c.agency_unit_id, referrals.c.created_at.desc(), referrals.c.id.desc())

# The latest facts of each case, as its events carried them (codes and flags, never names): what a
# declined referral is matched again with. Kept per case, so an update that reached no new unit still
# counts, and escalated referrals have them too.
case_facts = Table(
    "case_facts",
    metadata,
    Column("case_id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, nullable=False),  # the case's version the facts are of
    Column("facts", JSONB, nullable=False),  # a CaseFacts payload
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# How each alert of a referral fared, as notify reports it: when every one has failed, nobody was told,
# and waiting for the acknowledgement deadline would only lose time.
referral_deliveries = Table(
    "referral_deliveries",
    metadata,
    Column("notification_id", UUID(as_uuid=True), primary_key=True),
    Column("referral_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("channel", String(20), nullable=False),
    Column("status", String(30), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("recipient", String(320)),  # the agency's address; NULL when notify did not say (before v1.1)
)

# What agencies report back: counts and codes, never names.
referral_outcomes = Table(
    "referral_outcomes",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("referral_id", UUID(as_uuid=True), ForeignKey(referrals.c.id), nullable=False, index=True),
    Column("outcome", String(30), nullable=False),
    Column("victims", Integer),
    Column("services", ARRAY(String(40)), nullable=False, server_default="{}"),
    Column("recorded_by", String(200), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
