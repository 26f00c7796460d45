"""Event handlers: plain functions over a unit of work."""
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.dialects.postgresql import insert

from runtime.consumer import Event
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseReported
from schemas.events.common import Urgency
from schemas.events.referrals import AgencyContact, ContactChannel, ReferralCreated
from services.referral.models import referrals
from services.referral.referrals.matching import match_police
from services.referral.settings import ReferralSettings


def ack_deadline(settings: ReferralSettings, urgency: Urgency, now: datetime) -> datetime:
    minutes = {
        Urgency.emergency: settings.ack_minutes_emergency,
        Urgency.high: settings.ack_minutes_high,
        Urgency.normal: settings.ack_minutes_normal,
    }[urgency]
    return now + timedelta(minutes=minutes)


def on_case_reported(settings: ReferralSettings):
    async def handle(uow: UnitOfWork, event: Event[CaseReported]) -> None:
        case = event.payload
        match = await match_police(uow.session, case.province_code)
        now = datetime.now(UTC)
        referral_id = uuid.uuid4()
        due = ack_deadline(settings, case.urgency, now)
        inserted = await uow.session.scalar(
            insert(referrals)
            .values(
                id=referral_id, case_id=case.case_id, case_number=case.case_number, agency_unit_id=match.unit_id,
                status="pending", urgency=case.urgency, province_code=case.province_code,
                match_reason=match.reason, acknowledge_by=due, created_at=now,
            )
            .on_conflict_do_nothing(constraint="uq_referral_case_unit")
            .returning(referrals.c.id)
        )
        if inserted is None:
            return  # this case already went to this unit
        contacts = [AgencyContact(channel=ContactChannel.email, address=match.email)] if match.email else []
        if match.sms:
            contacts.append(AgencyContact(channel=ContactChannel.sms, address=match.sms))
        uow.emit(
            ReferralCreated(
                referral_id=referral_id, case_id=case.case_id, case_number=case.case_number,
                agency_unit_id=match.unit_id, agency_unit_name=match.unit_name, agency_kind=match.kind,
                province_code=case.province_code, urgency=case.urgency, acknowledge_by=due,
                match_reason=match.reason, contacts=contacts,
            ),
            key=str(case.case_id),
            subject=case.case_number,
        )

    return handle
