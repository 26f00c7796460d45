"""Referral's tables, in its own schema: the agency directory and the referrals made."""
from sqlalchemy import Boolean, Column, DateTime, ForeignKey, MetaData, String, Table, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import UUID

from runtime.db import inbox_table, outbox_table

SCHEMA = "referral"
metadata = MetaData(schema=SCHEMA)
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

agency_units = Table(
    "agency_units",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(300), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("province_code", String(2), index=True),
    Column("email", String(320)),
    Column("sms", String(32)),
    Column("active", Boolean, nullable=False, server_default="true"),
    Column("source", String(300), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
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
    Column("acknowledge_by", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("case_id", "agency_unit_id", name="uq_referral_case_unit"),
)
