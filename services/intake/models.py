"""Intake's tables, in its own schema. Names, phone numbers and free text are stored encrypted;
phone numbers also as a keyed HMAC, so a repeat caller is found without decrypting anything."""
from sqlalchemy import (
    BigInteger, Boolean, Column, DateTime, ForeignKey, Identity, Index, Integer, LargeBinary, MetaData, Sequence,
    SmallInteger, String, Table, UniqueConstraint, func, text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from runtime.crypto import EncryptedText
from runtime.db import inbox_table, outbox_table
from runtime.idempotency import idempotency_table

SCHEMA = "intake"
metadata = MetaData(schema=SCHEMA)
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)  # events consumed: referral's, so a case follows its referrals
idempotency_keys = idempotency_table(metadata)
case_number_seq = Sequence("case_number_seq", metadata=metadata)


def _codes(name: str) -> Column:
    return Column(name, ARRAY(String(40)), nullable=False, server_default="{}")


cases = Table(
    "cases",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("case_number", String(32), nullable=False, unique=True),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("status", String(20), nullable=False),
    Column("outcome", String(30)),
    Column("channel", String(20), nullable=False),
    Column("operator", String(200), nullable=False, server_default="unknown"),
    Column("province_code", String(2), nullable=False, index=True),
    Column("commune_code", String(5)),
    Column("abroad_country", String(2)),
    Column("abroad_place", EncryptedText("intake.cases.abroad_place")),
    Column("location_text", EncryptedText("intake.cases.location_text")),
    Column("moving_across_border", Boolean, nullable=False, server_default="false"),
    Column("destination_country", String(2)),
    Column("at_sea", Boolean, nullable=False, server_default="false"),
    Column("immediate_danger", Boolean, nullable=False),
    Column("violence", Boolean, nullable=False, server_default="false"),
    Column("child_victim", Boolean, nullable=False),
    _codes("exploitation"),
    _codes("means_of_control"),
    Column("recruitment_channel", String(40)),
    Column("consent_share_identity", Boolean, nullable=False, server_default="false"),
    Column("urgency", String(20), nullable=False),
    Column("urgency_floor", String(20), nullable=False),
    Column("urgency_reason", EncryptedText("intake.cases.urgency_reason")),
    Column("narrative", EncryptedText("intake.cases.narrative")),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("closed_at", DateTime(timezone=True)),
    Column("merged_into", UUID(as_uuid=True)),  # a duplicate keeps its history and points at the survivor
)
Index("ix_cases_list", cases.c.reported_at.desc(), cases.c.id.desc())
Index("ix_cases_status_urgency", cases.c.status, cases.c.urgency)
Index("ix_cases_commune_reported", cases.c.commune_code, cases.c.reported_at)  # the duplicate check

victims = Table(
    "victims",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("case_id", UUID(as_uuid=True), ForeignKey(cases.c.id, ondelete="CASCADE"), nullable=False, index=True),
    Column("position", SmallInteger, nullable=False),
    Column("name", EncryptedText("intake.victims.name")),
    Column("name_index", LargeBinary, index=True),  # keyed hash: finds the same person across cases
    Column("sex", String(10), nullable=False),
    Column("age", SmallInteger),
    Column("age_band", String(10), nullable=False),
    Column("is_child", Boolean, nullable=False),
    Column("nationality", String(2)),
    Column("ethnicity", EncryptedText("intake.victims.ethnicity")),  # sensitive: kept, never emitted
    Column("current_province_code", String(2)),
    Column("current_commune_code", String(5)),
    _codes("needs"),
)

traffickers = Table(
    "traffickers",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("case_id", UUID(as_uuid=True), ForeignKey(cases.c.id, ondelete="CASCADE"), nullable=False, index=True),
    Column("position", SmallInteger, nullable=False),
    Column("description", EncryptedText("intake.traffickers.description")),
    Column("description_index", LargeBinary, index=True),
    Column("role", String(20), nullable=False),
    Column("relationship", String(20), nullable=False),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("case_id", UUID(as_uuid=True), ForeignKey(cases.c.id), index=True),
    Column("channel", String(20), nullable=False),
    Column("contact_type", String(30), nullable=False),
    Column("non_case_reason", String(20)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=False),
    Column("operator", String(200), nullable=False),
    Column("language", String(2), nullable=False),
    Column("caller_role", String(30), nullable=False),
    Column("caller_name", EncryptedText("intake.contacts.caller_name")),
    Column("caller_phone", EncryptedText("intake.contacts.caller_phone")),
    Column("caller_phone_hmac", LargeBinary, index=True),
    Column("caller_sex", String(10), nullable=False),
    Column("caller_age_band", String(10), nullable=False),
    Column("caller_province_code", String(2)),
    Column("caller_commune_code", String(5)),
    Column("consent_callback", Boolean, nullable=False),
    Column("consent_share_identity", Boolean, nullable=False),
    _codes("consultation_topics"),
    _codes("consultation_given"),
    Column("notes", EncryptedText("intake.contacts.notes")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_contacts_list", contacts.c.started_at.desc(), contacts.c.id.desc())

case_notes = Table(
    "case_notes",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("case_id", UUID(as_uuid=True), ForeignKey(cases.c.id, ondelete="CASCADE"), nullable=False, index=True),
    Column("author", String(200), nullable=False),
    Column("text", EncryptedText("intake.case_notes.text"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Possible duplicates for a supervisor: same commune, close in time, and a shared caller, victim or suspect.
duplicate_flags = Table(
    "duplicate_flags",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("case_id", UUID(as_uuid=True), ForeignKey(cases.c.id), nullable=False, index=True),
    Column("other_case_id", UUID(as_uuid=True), ForeignKey(cases.c.id), nullable=False, index=True),
    Column("reasons", ARRAY(String(40)), nullable=False),
    Column("status", String(20), nullable=False, server_default="open"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved_by", String(200)),
    Column("resolved_at", DateTime(timezone=True)),
    UniqueConstraint("case_id", "other_case_id", name="uq_duplicate_pair"),
)

# Supervisors' blocks on a calling number; they expire and never delete history.
caller_blocks = Table(
    "caller_blocks",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("phone_index", LargeBinary, nullable=False, index=True),
    Column("reason", String(20), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lifted_by", String(200)),
    Column("lifted_at", DateTime(timezone=True)),
)

# Each referral of a case as referral's events tell it, for operators: unit, status, outcomes; never the
# agency's contacts. No foreign key to cases: an event about a case this database lacks is kept, not dead-lettered.
case_referrals = Table(
    "case_referrals",
    metadata,
    Column("referral_id", UUID(as_uuid=True), primary_key=True),
    Column("case_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("agency_unit_id", UUID(as_uuid=True), nullable=False),
    Column("agency_unit_name", String(300)),  # null until referral.created is seen
    Column("agency_kind", String(64)),
    Column("status", String(20), nullable=False),
    Column("decline_reason", String(30)),
    # [{outcome, victims, services, recorded_at}], in the order they arrived
    Column("outcomes", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Who read whose personal data, when: written in the same transaction as the read.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("case_id", UUID(as_uuid=True), index=True),
    Column("contact_id", UUID(as_uuid=True), index=True),
    Column("fields", ARRAY(String(60)), nullable=False),
)

PERSONAL_CASE_FIELDS = ("narrative", "urgency_reason", "abroad_place", "location_text")
PERSONAL_VICTIM_FIELDS = ("name", "ethnicity")
PERSONAL_TRAFFICKER_FIELDS = ("description",)
PERSONAL_CONTACT_FIELDS = ("caller_name", "caller_phone", "notes")
