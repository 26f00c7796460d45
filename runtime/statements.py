"""Hand-written SQL for a hot path, run on the raw asyncpg connection under a unit of work.

SQLAlchemy Core costs more CPU per statement than the statement itself costs PostgreSQL. Where one
request must write several tables, one statement of data-modifying CTEs does it in a single round
trip, atomically. Rows travel as JSON and are typed by the table's own row type
(`jsonb_populate_recordset(NULL::schema.table, …)`), so the SQL does not repeat the column list.
"""
import re
import uuid
from datetime import date, datetime
from enum import Enum
from typing import Any

import pydantic_core
from sqlalchemy import Table

from runtime.crypto import EncryptedText

_NAME = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class Statement:
    """SQL with `:name` placeholders, numbered once for asyncpg ($1, $2, …)."""

    def __init__(self, sql: str):
        names: list[str] = []

        def number(match: re.Match) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.sql = _NAME.sub(number, sql)
        self.names = tuple(names)

    def args(self, values: dict[str, Any]) -> list[Any]:
        if missing := set(self.names) - values.keys():
            raise KeyError(f"no value for {sorted(missing)}")
        if extra := values.keys() - set(self.names):
            raise KeyError(f"{sorted(extra)} not in the statement")
        return [values[n] for n in self.names]


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "\\x" + value.hex()  # bytea's text form, which the record input reads
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (uuid.UUID, datetime, date)):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def record(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """One row of `table` as JSON-ready values: encrypted columns sealed, bytes as bytea text.

    Every NOT NULL column must be given: a record built from JSON takes no server defaults.
    """
    row = {}
    for name, value in values.items():
        column_type = table.c[name].type  # KeyError on a typo, not a silently dropped field
        if isinstance(column_type, EncryptedText):
            value = column_type.process_bind_param(value, None)
        row[name] = _plain(value)
    return row


def record_json(table: Table, values: dict[str, Any]) -> str:
    """One row of `table` as the JSON text a `jsonb_populate_record` parameter takes."""
    return pydantic_core.to_json(record(table, values)).decode()


def records_json(table: Table, rows: list[dict[str, Any]]) -> str:
    """Rows of `table` as the JSON text a `jsonb_populate_recordset` parameter takes."""
    return pydantic_core.to_json([record(table, r) for r in rows]).decode()
