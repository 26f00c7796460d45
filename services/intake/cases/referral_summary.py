"""Each referral of a case as operators see it, written from referral's events: unit, status, decline reason,
outcomes. Never the agency's contacts.

Events may come late or twice (a replayed topic, a redelivery after the inbox): a status only ever moves forward
in the referral lifecycle, so a late step changes nothing.
"""
import uuid
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert

from runtime.uow import UnitOfWork
from schemas.events.referrals import (
    ReferralCreated, ReferralOutcomeRecorded, ReferralStatus as S, ReferralStatusChanged,
)
from services.intake.cases.schemas import CaseReferral
from services.intake.models import case_referrals as t

# Lifecycle order; accepted and declined are alternatives, so they share a rank.
RANK = {S.created: 0, S.notified: 1, S.acknowledged: 2, S.accepted: 3, S.declined: 3, S.closed: 4}


def _rank(column):
    return case({str(s): r for s, r in RANK.items()}, value=column, else_=-1)


async def record_created(uow: UnitOfWork, referral: ReferralCreated, at: datetime) -> None:
    """The unit's name and kind; a row that a later step wrote first keeps its status."""
    stmt = insert(t).values(
        referral_id=referral.referral_id, case_id=referral.case_id, agency_unit_id=referral.agency_unit_id,
        agency_unit_name=referral.agency_unit_name, agency_kind=referral.agency_kind, status=S.created,
        updated_at=at,
    )
    await uow.session.execute(stmt.on_conflict_do_update(
        index_elements=[t.c.referral_id],
        set_={"agency_unit_name": stmt.excluded.agency_unit_name, "agency_kind": stmt.excluded.agency_kind},
    ))


async def record_status(uow: UnitOfWork, change: ReferralStatusChanged) -> None:
    stmt = insert(t).values(
        referral_id=change.referral_id, case_id=change.case_id, agency_unit_id=change.agency_unit_id,
        status=change.to_status, decline_reason=change.decline_reason, updated_at=change.changed_at,
    )
    await uow.session.execute(stmt.on_conflict_do_update(
        index_elements=[t.c.referral_id],
        set_={"status": stmt.excluded.status, "updated_at": stmt.excluded.updated_at,
              "decline_reason": func.coalesce(stmt.excluded.decline_reason, t.c.decline_reason)},
        where=_rank(t.c.status) < _rank(stmt.excluded.status),  # forward only
    ))


async def record_outcome(uow: UnitOfWork, recorded: ReferralOutcomeRecorded) -> None:
    """Appended: the inbox already drops a redelivered event, so each outcome is added once."""
    entry = recorded.model_dump(mode="json", include={"outcome", "victims", "services", "recorded_at"})
    stmt = insert(t).values(
        referral_id=recorded.referral_id, case_id=recorded.case_id, agency_unit_id=recorded.agency_unit_id,
        agency_kind=recorded.agency_kind, status=S.accepted,  # outcomes are recorded on accepted referrals only
        outcomes=[entry], updated_at=recorded.recorded_at,
    )
    await uow.session.execute(stmt.on_conflict_do_update(
        index_elements=[t.c.referral_id],
        set_={"outcomes": t.c.outcomes.op("||")(stmt.excluded.outcomes),
              "updated_at": func.greatest(t.c.updated_at, stmt.excluded.updated_at)},
    ))


async def referrals_of(uow: UnitOfWork, case_id: uuid.UUID) -> list[CaseReferral]:
    rows = (await uow.session.execute(
        select(*(t.c[f] for f in CaseReferral.model_fields))
        .where(t.c.case_id == case_id).order_by(t.c.created_at, t.c.referral_id)
    )).mappings().all()
    found = [CaseReferral.model_validate(dict(r)) for r in rows]
    for referral in found:  # kept as they arrived; answered in the order they happened
        referral.outcomes.sort(key=lambda o: o.recorded_at)
    return found
