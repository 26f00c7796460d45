"""One referral event, as an agency organisation's system may see it. The feed's payload model is the
allowlist: the case's facts are offered whole and the model keeps only its own fields."""
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from schemas.events.cases import CaseFacts
from schemas.events.feeds import FeedChange, FeedReferral, FeedVictim
from schemas.events.referrals import (
    ReferralCreated, ReferralEscalated, ReferralOutcomeRecorded, ReferralReminder, ReferralStatusChanged,
)
from schemas.feeds import AgencyFeed
from services.referral.directory.model import Unit

FeedSource = ReferralCreated | ReferralStatusChanged | ReferralOutcomeRecorded | ReferralReminder | ReferralEscalated
FEED_SOURCES = (ReferralCreated, ReferralStatusChanged, ReferralOutcomeRecorded, ReferralReminder, ReferralEscalated)


def feed_message(feed: AgencyFeed, event: FeedSource, unit: Unit, referral: Mapping[str, Any],
                 facts: CaseFacts) -> FeedReferral:
    """`referral` is the referral's row as it stands in the transaction that emitted `event`."""
    state = {
        "referral_id": event.referral_id, "case_id": event.case_id, "case_number": event.case_number,
        "unit_code": unit.code, "unit_name": unit.name, "unit_kind": str(unit.kind),
        "status": referral["status"], "urgency": referral["urgency"], "province_code": referral["province_code"],
        "acknowledge_by": referral["acknowledge_by"], "identity_shared": referral["identity_shared"],
        "decline_reason": referral["decline_reason"],
    } | _change(event, referral)
    offered = facts.model_dump() | {
        "victims": [FeedVictim.model_validate(v.model_dump()) for v in facts.victims],
        "needs": sorted({need for v in facts.victims for need in v.needs}),
    }
    allowed = feed.payload.model_fields.keys() - state.keys()
    return feed.payload.model_validate(state | {k: v for k, v in offered.items() if k in allowed})


def _change(event: FeedSource, referral: Mapping[str, Any]) -> dict[str, Any]:
    match event:
        case ReferralCreated():
            return {"change": FeedChange.referred, "occurred_at": referral["created_at"]}
        case ReferralStatusChanged():
            return {"change": FeedChange.status_changed, "occurred_at": event.changed_at}
        case ReferralOutcomeRecorded():
            return {"change": FeedChange.outcome_recorded, "occurred_at": event.recorded_at,
                    "outcome": event.outcome, "outcome_victims": event.victims}
        case ReferralReminder():
            return {"change": FeedChange.reminded, "escalate_at": event.escalate_at,
                    "occurred_at": _first(referral["reminded_at"], event.acknowledge_by)}
        case ReferralEscalated():
            return {"change": FeedChange.escalated, "occurred_at": event.escalated_at,
                    "escalated_to_level": event.to_level}
    raise TypeError(f"no feed change for {type(event).__name__}")


def _first(*times: datetime | None) -> datetime:
    return next(t for t in times if t is not None)
