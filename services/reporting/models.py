"""Reporting's tables: projections built only from events. Codes, flags, counts and times; never a name,
a phone number, a case number or free text.

Each projection is order-independent: a row is created by whichever of its events arrives first and every
field has one rule (newest version wins, earliest time wins, a status only moves forward), so a replay in
any interleaving of topics gives the same rows. Cross-entity figures (cases referred, time to referral)
are computed at query time from these rows, never baked in at arrival.
"""
from sqlalchemy import (
    ARRAY, BigInteger, Boolean, CheckConstraint, Column, Date, DateTime, Identity, Index, Integer, MetaData, SmallInteger, String, Table,
    func, text,
)
from sqlalchemy.dialects.postgresql import UUID

from runtime.db import inbox_table

SCHEMA = "reporting"
metadata = MetaData(schema=SCHEMA)
inbox = inbox_table(metadata)
UNKNOWN = "unknown"  # a dimension the event did not give (e.g. a caller who gave no province)


# Contacts never change once recorded, so they are counted straight into a daily rollup (Vietnam time).
contacts_daily = Table(
    "contacts_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("channel", String(20), primary_key=True),
    Column("contact_type", String(30), primary_key=True),
    Column("province_code", String(7), primary_key=True),  # the caller's, or 'unknown'
    Column("caller_role", String(30), primary_key=True),
    Column("contacts", Integer, nullable=False),
    Column("duration_s", BigInteger, nullable=False, server_default="0"),
)

cases = Table(
    "cases",
    metadata,
    Column("case_id", UUID(as_uuid=True), primary_key=True),
    Column("reported", Boolean, nullable=False, server_default="false"),  # case.reported seen
    Column("facts_version", Integer, nullable=False, server_default="0"),
    Column("status_version", Integer, nullable=False, server_default="0"),
    Column("reported_at", DateTime(timezone=True)),
    Column("day", Date),  # reported_at in Vietnam time
    Column("channel", String(20)),
    Column("province_code", String(2)),
    Column("urgency", String(20)),
    Column("status", String(20), nullable=False, server_default="open"),
    Column("outcome", String(30)),
    Column("status_changed_at", DateTime(timezone=True)),
    Column("exploitation", ARRAY(String(40)), nullable=False, server_default="{}"),
    Column("child_involved", Boolean, nullable=False, server_default="false"),
    Column("cross_border", Boolean, nullable=False, server_default="false"),
    Column("at_sea", Boolean, nullable=False, server_default="false"),
    Column("abroad_country", String(2)),
    Column("destination_country", String(2)),
    Column("means_of_control", ARRAY(String(40)), nullable=False, server_default="{}"),
    Column("recruitment_channel", String(30)),
    Column("merged", Boolean, nullable=False, server_default="false"),  # a duplicate: not counted
    Column("first_referred_at", DateTime(timezone=True)),  # the earliest referral.created seen
)
Index("ix_cases_day", cases.c.day)

# A case's potential victims, replaced whole by each newer version of its facts.
victims = Table(
    "victims",
    metadata,
    Column("case_id", UUID(as_uuid=True), primary_key=True),
    Column("seq", SmallInteger, primary_key=True),
    Column("sex", String(10), nullable=False),
    Column("age_band", String(10), nullable=False),
    Column("is_child", Boolean, nullable=False),
    Column("nationality", String(2)),
    Column("needs", ARRAY(String(30)), nullable=False, server_default="{}"),
)

referrals = Table(
    "referrals",
    metadata,
    Column("referral_id", UUID(as_uuid=True), primary_key=True),
    Column("case_id", UUID(as_uuid=True), nullable=False),
    Column("created", Boolean, nullable=False, server_default="false"),  # referral.created seen
    Column("created_at", DateTime(timezone=True)),
    Column("day", Date),
    Column("agency_kind", String(40)),
    Column("agency_level", String(20)),
    Column("province_code", String(2)),
    Column("urgency", String(20)),
    Column("cause", String(20)),
    Column("acknowledge_by", DateTime(timezone=True)),
    Column("status", String(20), nullable=False, server_default="created"),
    Column("status_rank", SmallInteger, nullable=False, server_default="0"),
    Column("first_response_at", DateTime(timezone=True)),  # first acknowledged, accepted or declined
    Column("decline_reason", String(30)),
    Column("reminded", Boolean, nullable=False, server_default="false"),  # its deadline passed unacknowledged
    Column("escalated_at", DateTime(timezone=True)),
    Column("escalated_to_level", String(20)),  # 'top' when there was no level left
)
Index("ix_referrals_case", referrals.c.case_id)
Index("ix_referrals_day", referrals.c.day)

# One row per outcome an agency recorded (an event can only be recorded once: keyed by its event id).
outcomes = Table(
    "outcomes",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("referral_id", UUID(as_uuid=True), nullable=False),
    Column("case_id", UUID(as_uuid=True), nullable=False),
    Column("agency_kind", String(40), nullable=False),
    Column("province_code", String(2), nullable=False),
    Column("outcome", String(30), nullable=False),
    Column("victims", Integer),
    Column("services", ARRAY(String(30)), nullable=False, server_default="{}"),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("day", Date, nullable=False),
)
Index("ix_outcomes_case", outcomes.c.case_id)

notifications = Table(
    "notifications",
    metadata,
    Column("notification_id", UUID(as_uuid=True), primary_key=True),
    Column("referral_id", UUID(as_uuid=True), nullable=False),
    Column("case_id", UUID(as_uuid=True), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("kind", String(40)),
    Column("provider", String(40)),
    Column("status", String(20), nullable=False),
    Column("status_rank", SmallInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),  # the earliest status seen
    Column("day", Date, nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
)

# Where the projections stand in each partition, written in the same transaction as the events applied:
# the lag reported with every answer is the broker's end offset minus this.
positions = Table(
    "positions",
    metadata,
    Column("topic", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("event_time", DateTime(timezone=True)),  # of the last event applied
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One row: the projections' generation. A rebuild empties every projection and bumps it; consumers of an
# older generation stop, and rejoin as a fresh consumer group that reads every topic from the start.
projection_state = Table(
    "projection_state",
    metadata,
    Column("id", SmallInteger, primary_key=True, server_default="1"),
    Column("generation", Integer, nullable=False, server_default="1"),
    Column("rebuild_started_at", DateTime(timezone=True)),
    Column("rebuild_requested_by", String(100)),
    CheckConstraint("id = 1", name="one_row"),
)

# Who turned suppression off, when, for what: internal use of unsuppressed small cells is audited.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("subject", String(200), nullable=False),  # the staff member's token subject
    Column("action", String(40), nullable=False),
    Column("path", String(300), nullable=False),
    Column("query", String(2000), nullable=False, server_default=text("''")),
)

PROJECTIONS = (contacts_daily, cases, victims, referrals, outcomes, notifications, positions)
