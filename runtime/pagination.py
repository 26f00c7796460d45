"""Opaque cursors for keyset pagination: stable under inserts, no OFFSET scans."""
import base64
import json
from datetime import datetime

from runtime.problems import DomainError


def encode_cursor(at: datetime, row_id) -> str:
    """The last row's sort time and id (a UUID or an integer: anything with a plain str())."""
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, id_type=str) -> tuple[datetime, object]:
    """(time, id) of a cursor from encode_cursor; `id_type` (UUID, int) parses the id."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        return datetime.fromisoformat(at), id_type(row_id)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise DomainError("not a cursor returned by this API", field="cursor") from exc


def encode_key_cursor(key: str) -> str:
    """The last row's unique sort key (e.g. a code), for lists ordered by that key alone."""
    return base64.urlsafe_b64encode(json.dumps([key]).encode()).decode().rstrip("=")


def decode_key_cursor(cursor: str) -> str:
    try:
        (key,) = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(key, str):
            raise TypeError(key)
        return key
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise DomainError("not a cursor returned by this API", field="cursor") from exc
