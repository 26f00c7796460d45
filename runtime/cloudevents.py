"""CloudEvents 1.0 in Kafka binary mode: attributes as `ce_*` headers, the payload as the JSON value."""
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
_REQUIRED = ("ce_id", "ce_source", "ce_type", "ce_specversion")


class EnvelopeError(ValueError):
    """The record is not a valid CloudEvent; it can never be processed, so it is a dead letter."""


@dataclass(frozen=True)
class Envelope:
    id: UUID
    source: str
    type: str
    time: datetime
    subject: str | None
    data: bytes
    extensions: dict[str, str] = field(default_factory=dict)

    def headers(self) -> list[tuple[str, bytes]]:
        pairs = [
            ("ce_specversion", SPECVERSION),
            ("ce_id", str(self.id)),
            ("ce_source", self.source),
            ("ce_type", self.type),
            ("ce_time", self.time.isoformat()),
            ("content-type", CONTENT_TYPE),
        ]
        if self.subject:
            pairs.append(("ce_subject", self.subject))
        pairs.extend(self.extensions.items())
        return [(k, v.encode()) for k, v in pairs]


def decode(headers: list[tuple[str, bytes]] | tuple, value: bytes | None) -> Envelope:
    try:
        h = {k: v.decode() for k, v in headers or ()}
    except UnicodeDecodeError as exc:
        raise EnvelopeError("header is not UTF-8") from exc
    missing = [k for k in _REQUIRED if k not in h]
    if missing:
        raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
    if h["ce_specversion"] != SPECVERSION:
        raise EnvelopeError(f"unsupported ce_specversion {h['ce_specversion']!r}")
    if h.get("content-type", CONTENT_TYPE).split(";")[0].strip() != CONTENT_TYPE:
        raise EnvelopeError("content-type must be application/json")
    if value is None:
        raise EnvelopeError("record has no value")
    try:
        event_id = UUID(h["ce_id"])
        time = datetime.fromisoformat(h["ce_time"]) if "ce_time" in h else datetime.min
    except ValueError as exc:
        raise EnvelopeError(f"bad ce_id or ce_time: {exc}") from exc
    known = {*_REQUIRED, "ce_time", "ce_subject", "content-type"}
    return Envelope(
        id=event_id,
        source=h["ce_source"],
        type=h["ce_type"],
        time=time,
        subject=h.get("ce_subject"),
        data=value,
        extensions={k: v for k, v in h.items() if k not in known},
    )


def headers_dict(headers: Any) -> dict[str, str]:
    """Headers as text, for trace extraction and dead-letter copies; undecodable bytes are replaced."""
    return {k: v.decode(errors="replace") for k, v in headers or ()}
