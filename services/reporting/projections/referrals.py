"""Referrals and the outcomes agencies record. A status only moves forward; the first response (an
acknowledgement, acceptance or decline) keeps its earliest time."""
from sqlalchemy import case, func, insert

from runtime.consumer import Event
from runtime.uow import UnitOfWork
from schemas.events.referrals import (
    ReferralCreated, ReferralEscalated, ReferralOutcomeRecorded, ReferralReminder, ReferralStatus,
    ReferralStatusChanged,
)
from services.reporting.models import outcomes, referrals
from services.reporting.projections.batch import Upsert
from services.reporting.projections.cases import note_referred
from services.reporting.projections.clock import local_day

t = referrals.c
S = ReferralStatus
RANK = {S.created: 0, S.notified: 1, S.acknowledged: 2, S.accepted: 3, S.declined: 3, S.closed: 4}
RESPONSES = frozenset({S.acknowledged, S.accepted, S.declined})


CREATED_FACTS = ("created", "created_at", "day", "agency_kind", "agency_level", "province_code", "urgency", "cause",
                 "acknowledge_by")
CREATED = Upsert(referrals, ("referral_id",), lambda ex: {c: ex[c] for c in CREATED_FACTS})
STATUS = Upsert(referrals, ("referral_id",), lambda ex: {
    "status": case((t.status_rank < ex.status_rank, ex.status), else_=t.status),
    "status_rank": func.greatest(t.status_rank, ex.status_rank),
    "first_response_at": func.least(t.first_response_at, ex.first_response_at),
    "decline_reason": func.coalesce(t.decline_reason, ex.decline_reason),
})
REMINDED = Upsert(referrals, ("referral_id",), lambda ex: {"reminded": ex.reminded})
ESCALATED = Upsert(referrals, ("referral_id",), lambda ex: {"escalated_at": ex.escalated_at,
                                                           "escalated_to_level": ex.escalated_to_level})


async def on_referral_created(uow: UnitOfWork, event: Event[ReferralCreated]) -> None:
    r = event.payload
    CREATED.stage(uow, {"referral_id": r.referral_id, "case_id": r.case_id, "created": True,
                        "created_at": event.time, "day": local_day(event.time), "agency_kind": r.agency_kind,
                        "agency_level": r.agency_level, "province_code": r.province_code, "urgency": r.urgency,
                        "cause": r.cause, "acknowledge_by": r.acknowledge_by})
    note_referred(uow, r.case_id, r.province_code, event.time)


async def on_referral_status_changed(uow: UnitOfWork, event: Event[ReferralStatusChanged]) -> None:
    s = event.payload
    STATUS.stage(uow, {"referral_id": s.referral_id, "case_id": s.case_id, "status": s.to_status,
                       "status_rank": RANK[s.to_status],
                       "first_response_at": s.changed_at if s.to_status in RESPONSES else None,
                       "decline_reason": s.decline_reason})


async def on_referral_reminder(uow: UnitOfWork, event: Event[ReferralReminder]) -> None:
    r = event.payload
    REMINDED.stage(uow, {"referral_id": r.referral_id, "case_id": r.case_id, "reminded": True})


async def on_referral_escalated(uow: UnitOfWork, event: Event[ReferralEscalated]) -> None:
    e = event.payload
    ESCALATED.stage(uow, {"referral_id": e.referral_id, "case_id": e.case_id, "escalated_at": e.escalated_at,
                          "escalated_to_level": e.to_level or "top"})


async def on_outcome_recorded(uow: UnitOfWork, event: Event[ReferralOutcomeRecorded]) -> None:
    o = event.payload
    await uow.session.execute(insert(outcomes).values(
        event_id=event.id, referral_id=o.referral_id, case_id=o.case_id, agency_kind=o.agency_kind,
        province_code=o.province_code, outcome=o.outcome, victims=o.victims, services=sorted(o.services),
        recorded_at=o.recorded_at, day=local_day(o.recorded_at)))
