"""Event handlers that fold events into aggregates."""
from datetime import UTC

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert

from runtime.consumer import Event
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseReported
from schemas.events.contacts import ContactRecorded
from schemas.events.referrals import ReferralCreated
from services.reporting.models import cases_by_province, contacts_by_type, referred_cases


async def _increment(uow: UnitOfWork, province_code: str, column: str) -> None:
    stmt = insert(cases_by_province).values(province_code=province_code, **{column: 1})
    await uow.session.execute(
        stmt.on_conflict_do_update(
            index_elements=[cases_by_province.c.province_code],
            set_={column: cases_by_province.c[column] + 1, "updated_at": func.now()},
        )
    )


async def on_case_reported(uow: UnitOfWork, event: Event[CaseReported]) -> None:
    await _increment(uow, event.payload.province_code, "cases_reported")


async def on_referral_created(uow: UnitOfWork, event: Event[ReferralCreated]) -> None:
    first = await uow.session.scalar(
        insert(referred_cases)
        .values(case_id=event.payload.case_id, province_code=event.payload.province_code)
        .on_conflict_do_nothing()
        .returning(referred_cases.c.case_id)
    )
    if first is not None:
        await _increment(uow, event.payload.province_code, "cases_referred")


async def on_contact_recorded(uow: UnitOfWork, event: Event[ContactRecorded]) -> None:
    c = event.payload
    stmt = insert(contacts_by_type).values(
        month=c.started_at.astimezone(UTC).strftime("%Y-%m"), contact_type=c.contact_type, channel=c.channel,
        contacts=1)
    await uow.session.execute(stmt.on_conflict_do_update(
        index_elements=[contacts_by_type.c.month, contacts_by_type.c.contact_type, contacts_by_type.c.channel],
        set_={"contacts": contacts_by_type.c.contacts + 1, "updated_at": func.now()},
    ))
