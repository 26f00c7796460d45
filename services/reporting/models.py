"""Reporting's tables: aggregates only, built from events. No personal data ever reaches them."""
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import UUID

from runtime.db import inbox_table

SCHEMA = "reporting"
metadata = MetaData(schema=SCHEMA)
inbox = inbox_table(metadata)

cases_by_province = Table(
    "cases_by_province",
    metadata,
    Column("province_code", String(2), primary_key=True),
    Column("cases_reported", Integer, nullable=False, server_default="0"),
    Column("cases_referred", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A case counts once as referred, however many agencies it goes to.
referred_cases = Table(
    "referred_cases",
    metadata,
    Column("case_id", UUID(as_uuid=True), primary_key=True),
    Column("province_code", String(2), nullable=False),
)

# Every contact counts, case or not: calls received, information versus consultation, by month.
contacts_by_type = Table(
    "contacts_by_type",
    metadata,
    Column("month", String(7), primary_key=True),  # YYYY-MM of the contact's start, in UTC
    Column("contact_type", String(30), primary_key=True),
    Column("channel", String(20), primary_key=True),
    Column("contacts", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
