"""Opaque cursors for keyset pagination: stable under inserts, no OFFSET scans."""
import base64
import json
from datetime import datetime
from uuid import UUID

from runtime.problems import DomainError


def encode_cursor(at: datetime, row_id: UUID) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        return datetime.fromisoformat(at), UUID(row_id)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise DomainError("not a cursor returned by this API", field="cursor") from exc
