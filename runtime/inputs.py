"""What every route takes as text, checked the same way everywhere.

Text that cannot be stored is refused at the edge: PostgreSQL's text holds no NUL character, and UTF-8
no unpaired surrogate (a JSON escape such as \\ud800 lets one through the JSON parser). Without this check
such a value reaches the database, or the encryption of personal data, and the request fails with a 500.

`reject_unstorable_text` is a dependency of every route (runtime.service.build_app): a 422 problem naming
each field at fault (path and query parameters, and every string of a JSON body, keys included), never
echoing the value. A route that reads a raw body (a directory file) checks it itself (runtime.inputs.storable).

Dates and times are ISO 8601 text (`IsoDate`, `IsoDateTime`), never a number read as a Unix timestamp.
"""
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated

from fastapi import Request
from pydantic import BeforeValidator

from runtime.auth import refusal
from runtime.problems import DomainError

# A JSON body can only hold such text through an escape, \u0000 or a surrogate \ud800-\udfff (a raw NUL byte
# or invalid UTF-8 is no JSON: the route answers that). Only a body with one of these is looked at closely.
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
DETAIL = "must not contain the NUL character or an unpaired surrogate"


def storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate
        return False
    return True


def _shown(name: str) -> str:
    """A field name fit to answer with (a JSON key may itself be the culprit)."""
    return name if storable(name) else "".join(c if storable(c) else "\ufffd" for c in name)


def _strings(value, path: list[str]) -> Iterator[str]:
    """The dotted paths of the unstorable strings (and keys) in a parsed JSON value."""
    if isinstance(value, str):
        if not storable(value):
            yield ".".join(path) or "body"
    elif isinstance(value, dict):
        for key, item in value.items():
            if not storable(key):
                yield ".".join([*path, _shown(key)])
            yield from _strings(item, [*path, _shown(key)])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, [*path, str(index)])


async def _body_fields(request: Request) -> list[str]:
    """Only a body FastAPI parses itself as JSON (a route with a body model; it was read before any
    dependency ran, so this costs nothing more). Routes that read a raw body (a file, a signed callback)
    check it themselves, after authentication."""
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is None:
        return []
    if not _SUSPECT.search(await request.body()):
        return []
    try:
        parsed = await request.json()  # parsed already, and cached
    except ValueError:
        return []  # not JSON: the route's own validation answers that
    return list(dict.fromkeys(_strings(parsed, [])))


async def reject_unstorable_text(request: Request) -> None:
    errors = [{"field": _shown(name), "in": "path", "detail": DETAIL, "code": "unstorable_text"}
              for name, value in request.path_params.items() if isinstance(value, str) and not storable(value)]
    errors += [{"field": _shown(name), "in": "query", "detail": DETAIL, "code": "unstorable_text"}
               for name, value in request.query_params.multi_items() if not storable(value)]
    if request.method in _WITH_BODY:
        errors += [{"field": field, "in": "body", "detail": DETAIL, "code": "unstorable_text"}
                   for field in await _body_fields(request)]
    if errors:
        # This runs before the route's own dependencies: a stranger gets the 401 or 403 first, never a word
        # about the endpoint's input (as for any other invalid request, runtime.problems).
        if (refused := await refusal(request)) is not None:
            raise refused
        raise DomainError("; ".join(f"{e['field']}: {DETAIL}" for e in errors), errors=errors)


# ---- dates and times: ISO 8601 text only ---------------------------------------------------------------------
# Pydantic's lax mode reads a number (or a string of digits) as a Unix timestamp: `from=0` would be 1970-01-01
# although the schema says `format: date`. A date or time the API takes is ISO 8601 text, nothing else.
_NUMBER = re.compile(r"\s*[+-]?\d+(\.\d*)?\s*")


def _iso_text(value):
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("an ISO 8601 date or time (2026-01-31, 2026-01-31T08:30:00+07:00), not a number")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_text)]
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_text)]
