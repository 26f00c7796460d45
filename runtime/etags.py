"""Optimistic concurrency over HTTP: a resource's version is its ETag, and a change must send it back
in If-Match (RFC 9110), so nobody overwrites a change they never saw."""
from runtime.problems import DomainError


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(value: str | None) -> int | None:
    """The version an If-Match header names; None when absent; a 422 naming If-Match when not ours."""
    if value is None:
        return None
    try:
        return int(value.removeprefix("W/").strip('"'))
    except ValueError as exc:
        raise DomainError("not an ETag this API issued", field="If-Match") from exc
