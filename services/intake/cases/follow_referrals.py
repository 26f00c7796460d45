"""A case's status follows its referrals: the first referral made moves an open case to referred.

The agencies' later steps (accepted, outcomes) stay referral's; intake only records that the case left
the hotline's hands. A case someone already moved on (in progress, closed) is left as it is.
"""
from datetime import UTC, datetime

from sqlalchemy import update

from runtime.consumer import Event
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseStatusChanged
from schemas.events.referrals import ReferralCreated
from schemas.vocab import CaseStatus
from services.intake.models import cases


async def on_referral_created(uow: UnitOfWork, event: Event[ReferralCreated]) -> None:
    referral = event.payload
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
