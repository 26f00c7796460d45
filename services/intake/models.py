"""Intake's tables, in its own schema. Personal data and free text are stored encrypted."""
from sqlalchemy import Boolean, Column, DateTime, MetaData, Sequence, String, Table, func
from sqlalchemy.dialects.postgresql import UUID

from runtime.crypto import EncryptedText
from runtime.db import outbox_table

SCHEMA = "intake"
metadata = MetaData(schema=SCHEMA)
outbox = outbox_table(metadata)
case_number_seq = Sequence("case_number_seq", metadata=metadata)

cases = Table(
    "cases",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("case_number", String(32), nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("province_code", String(2), nullable=False, index=True),
    Column("commune_code", String(5)),
    Column("immediate_danger", Boolean, nullable=False),
    Column("child_victim", Boolean, nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("urgency_floor", String(20), nullable=False),
    Column("urgency_reason", EncryptedText),
    Column("narrative", EncryptedText),
    Column("idempotency_key", String(100), unique=True),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
