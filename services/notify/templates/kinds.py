"""The messages notify writes to agency units, and the facts their templates may use.

A context holds facts about the referral only: its case number, unit, urgency, category, place, times and
acknowledge link. Never a name, phone number or note: the events do not carry them, and a context is
built from nothing else. Every value is a string, empty when unknown (templates test it with `{% if %}`).

| kind | from | keys (besides the common ones) |
|---|---|---|
| referral.created | ReferralCreated (cause matched or escalation) | deadline, ack_url |
| referral.rerouted | ReferralCreated with cause reroute | deadline, ack_url |
| referral.reminder | ReferralReminder | deadline, escalate_at, ack_url |
| referral.escalated | ReferralEscalated (to the unit that did not acknowledge) | deadline, to_level |
| referral.closed | ReferralStatusChanged to closed | — |

Common keys: reference, referral_id, unit, urgency, category, province, commune.

ReferralReminder, ReferralEscalated and ReferralStatusChanged do not repeat every fact of the referral.
What they lack comes from `earlier`: the facts notify kept when it first alerted the referral. The
dispatcher keeps `facts_of(referral_created)` (a JSON-safe dict) with that alert and passes it back as
`earlier` for the referral's later messages; the event's own facts win over it.
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypedDict

from schemas.events.referrals import (
    ReferralCause,
    ReferralCreated,
    ReferralEscalated,
    ReferralReminder,
    ReferralStatus,
    ReferralStatusChanged,
)
from services.notify.templates import words

Payload = ReferralCreated | ReferralReminder | ReferralEscalated | ReferralStatusChanged


class Kind(StrEnum):
    created = "referral.created"
    rerouted = "referral.rerouted"
    reminder = "referral.reminder"
    escalated = "referral.escalated"
    closed = "referral.closed"


class Channel(StrEnum):
    sms = "sms"
    email = "email"


class Language(StrEnum):
    vi = "vi"
    en = "en"


_COMMON = ("reference", "referral_id", "unit", "urgency", "category", "province", "commune")
KEYS: dict[Kind, tuple[str, ...]] = {
    Kind.created: _COMMON + ("deadline", "ack_url"),
    Kind.rerouted: _COMMON + ("deadline", "ack_url"),
    Kind.reminder: _COMMON + ("deadline", "escalate_at", "ack_url"),
    Kind.escalated: _COMMON + ("deadline", "to_level"),
    Kind.closed: _COMMON,
}
# May be empty in a real message: a template must read well without them (validation renders that case too).
OPTIONAL = frozenset({"unit", "urgency", "province", "commune", "deadline", "ack_url", "to_level"})


class Facts(TypedDict, total=False):
    """What one event tells about its referral, JSON-safe, to keep and pass back as `earlier`."""

    unit: str  # the agency unit's display name
    urgency: str  # schemas.events.common.Urgency
    language: str  # the language to write to the unit in
    ack_url: str
    acknowledge_by: str  # ISO 8601
    province_code: str
    commune_code: str
    exploitation: list[str]  # schemas.vocab.Exploitation


def kind_of(payload: object) -> Kind | None:
    """The message an event asks for; None when it asks for none."""
    match payload:
        case ReferralCreated(cause=ReferralCause.reroute):
            return Kind.rerouted
        case ReferralCreated():
            return Kind.created
        case ReferralReminder():
            return Kind.reminder
        case ReferralEscalated():
            return Kind.escalated
        case ReferralStatusChanged(to_status=ReferralStatus.closed):
            return Kind.closed
    return None


def facts_of(payload: Payload) -> Facts:
    """The referral's facts the event carries (ReferralCreated carries them all)."""
    found: dict[str, Any] = {}
    if isinstance(payload, ReferralCreated | ReferralReminder):
        found = {"unit": payload.agency_unit_name, "urgency": str(payload.urgency), "language": payload.language,
                 "ack_url": payload.ack_url, "acknowledge_by": payload.acknowledge_by.isoformat()}
    if isinstance(payload, ReferralCreated):
        found |= {"province_code": payload.province_code, "commune_code": payload.commune_code,
                  "exploitation": [str(e) for e in payload.exploitation]}
    return Facts(**{k: v for k, v in found.items() if v is not None})


def language_of(payload: Payload, earlier: Mapping[str, Any] | None = None) -> str:
    """The language to write to the unit in: the event's, else the one kept, else Vietnamese."""
    return words.language(facts_of(payload).get("language") or (earlier or {}).get("language"))


def context_for(kind: str, payload: Payload, language: str | None = None,
                earlier: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The context of `kind`'s templates for `payload`, in `language` (pass the language of the template that
    will render it, which may be the Vietnamese fallback; None: the unit's). `earlier`: the referral's facts
    kept from its first alert (facts_of), for the events that do not repeat them."""
    kind = Kind(kind)
    if kind_of(payload) is not kind:
        raise ValueError(f"a {type(payload).__name__} is not a {kind} message")
    facts: dict[str, Any] = {**(earlier or {}), **facts_of(payload)}
    lang = words.language(language or facts.get("language"))
    values = {
        "reference": payload.case_number,
        "referral_id": str(payload.referral_id),
        "unit": words.name(facts.get("unit") or "", lang),
        "urgency": words.urgency(facts.get("urgency"), lang),
        "category": words.category(facts.get("exploitation") or (), lang),
        "province": words.province(facts.get("province_code"), lang),
        "commune": words.commune(facts.get("commune_code"), lang),
        "deadline": words.local_time(facts.get("acknowledge_by"), lang),
        "ack_url": facts.get("ack_url") or "",
        "escalate_at": words.local_time(getattr(payload, "escalate_at", None), lang),
        "to_level": words.level(getattr(payload, "to_level", None), lang),
    }
    return {key: values[key] for key in KEYS[kind]}


# ---- samples: what previews show and what validation renders every template with ------------------------

_ACK_TOKEN = "AVoMK45vHUw6m34tT2qMDhJpreHAAQ_tdiJjzQXRkzKY5NovEA"  # as long as a real one (50), and no valid one
_DEADLINE = datetime(2026, 3, 5, 7, 30, tzinfo=UTC)


def _samples() -> dict[Kind, Payload]:
    # Long real values on purpose (the longest commune name of Hà Nội): a template that fits the SMS
    # limit with them fits with most real ones.
    ids = {"referral_id": uuid.UUID("5a0c2b8e-6f1d-4c3a-9b7e-2d4f6a8c0e12"),
           "case_id": uuid.UUID("0b6f1c3e-2a4d-4e8f-9c1b-7d5e3f2a1b00"), "case_number": "111-2026-000042",
           "agency_unit_id": uuid.UUID("c3d2e1f0-1a2b-4c3d-8e9f-0a1b2c3d4e5f")}
    created = ReferralCreated(
        **ids, agency_unit_name="Công an phường Văn Miếu - Quốc Tử Giám", agency_kind="police_commune",
        province_code="01", commune_code="00196", urgency="emergency", acknowledge_by=_DEADLINE,
        match_reason="sample", contacts=[], exploitation=["forced_marriage", "sexual_exploitation"],
        ack_url=f"https://hotline111.example/ack/{_ACK_TOKEN}")
    return {
        Kind.created: created,
        Kind.rerouted: created.model_copy(update={"cause": ReferralCause.reroute}),
        Kind.reminder: ReferralReminder(
            **ids, agency_unit_name=created.agency_unit_name, urgency=created.urgency,
            acknowledge_by=_DEADLINE, escalate_at=_DEADLINE + timedelta(minutes=15), contacts=[],
            ack_url=created.ack_url),
        Kind.escalated: ReferralEscalated(**ids, escalated_referral_id=uuid.uuid5(ids["referral_id"], "up"),
                                          to_level="province", escalated_at=_DEADLINE + timedelta(minutes=30)),
        Kind.closed: ReferralStatusChanged(**ids, from_status="accepted", to_status="closed", via="agency_api",
                                           changed_at=_DEADLINE + timedelta(days=3)),
    }


SAMPLE_EVENTS = _samples()
SAMPLE_FACTS: Facts = facts_of(SAMPLE_EVENTS[Kind.created])
# kind -> language -> context
SAMPLE: dict[Kind, dict[str, dict[str, str]]] = {
    kind: {lang: context_for(kind, event, lang, SAMPLE_FACTS) for lang in Language}
    for kind, event in SAMPLE_EVENTS.items()
}


def sample(kind: str, language: str) -> dict[str, str]:
    return dict(SAMPLE[Kind(kind)][words.language(language)])


def sparse(kind: str, language: str) -> dict[str, str]:
    """The sample with every optional fact unknown: the other way a template must render."""
    return {k: "" if k in OPTIONAL else v for k, v in sample(kind, language).items()}
