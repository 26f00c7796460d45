"""A case's status follows its referrals: the first referral made moves an open case to referred, and a
referral accepted by its unit moves a referred case to in progress. Every referral event also updates the
case's referral summary (referral_summary).

Only forward, and only from where the hotline left it: a case someone already moved on (in progress,
closed, merged) is left as it is.
"""
from datetime import UTC, datetime

from sqlalchemy import update

from runtime.consumer import Event
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseStatusChanged
from schemas.events.referrals import ReferralCreated, ReferralOutcomeRecorded, ReferralStatus, ReferralStatusChanged
from schemas.vocab import CaseStatus
from services.intake.actors import Actor
from services.intake.cases import referral_summary
from services.intake.cases.repository import case_row
from services.intake.cases.schemas import StatusChangeIn
from services.intake.cases.service import apply_status_change
from services.intake.models import cases

# The moves made on referral's word: not a supervisor, so the lifecycle's supervisor-only moves stay closed.
REFERRAL_EVENTS = Actor("system:referral")


async def on_referral_created(uow: UnitOfWork, event: Event[ReferralCreated]) -> None:
    referral = event.payload
    await referral_summary.record_created(uow, referral, event.time)
    now = datetime.now(UTC)
    moved = (await uow.session.execute(
        update(cases).where(cases.c.id == referral.case_id, cases.c.status == CaseStatus.open)
        .values(status=CaseStatus.referred, version=cases.c.version + 1, updated_at=now)
        .returning(cases.c.case_number, cases.c.province_code, cases.c.version)
    )).first()
    if moved is None:
        return
    uow.emit(CaseStatusChanged(
        case_id=referral.case_id, case_number=moved.case_number, province_code=moved.province_code,
        version=moved.version, from_status=CaseStatus.open, to_status=CaseStatus.referred, outcome=None,
        changed_at=now,
    ), key=str(referral.case_id), subject=moved.case_number)


async def on_referral_status_changed(uow: UnitOfWork, event: Event[ReferralStatusChanged]) -> None:
    change = event.payload
    await referral_summary.record_status(uow, change)
    if change.to_status == ReferralStatus.accepted:
        await _take_on(uow, change)


async def _take_on(uow: UnitOfWork, change: ReferralStatusChanged) -> None:
    """A unit took the case on: a referred case is in progress, as if an operator had moved it."""
    row = await case_row(uow, change.case_id, cases.c.merged_into, for_update=True)
    if row is None or row["status"] != CaseStatus.referred or row["merged_into"] is not None:
        return
    await apply_status_change(uow, REFERRAL_EVENTS, row, StatusChangeIn(status=CaseStatus.in_progress))


async def on_referral_outcome_recorded(uow: UnitOfWork, event: Event[ReferralOutcomeRecorded]) -> None:
    await referral_summary.record_outcome(uow, event.payload)
