"""When notify reports that every alert of a referral failed for good, nobody was told: the referral
escalates at the scanner's next pass instead of at its acknowledgement deadline. A delivered alert
only moves it to notified."""
import uuid
from datetime import timedelta

from sqlalchemy import select

from runtime.consumer import Event
from schemas.events.notifications import DeliveryStatus, NotificationStatusChanged
from services.referral.deadlines.scanner import fire_due
from services.referral.models import referrals
from services.referral.referrals.delivery import on_notification
from tests.referral.own_database import T0, report, uow


async def a_referral(db, referrer, province: str) -> tuple:
    case = await report(db, referrer, province_code=province)
    async with db[0].connect() as conn:
        row = (await conn.execute(select(referrals).where(referrals.c.case_id == case.case_id)
                                  .order_by(referrals.c.created_at))).mappings().first()
    return case, row


async def tell(db, referral, notification_id: uuid.UUID, status: DeliveryStatus, minutes: int = 1) -> None:
    payload = NotificationStatusChanged(
        notification_id=notification_id, referral_id=referral["id"], case_id=referral["case_id"], channel="email",
        status=status, occurred_at=T0 + timedelta(minutes=minutes), attempts=1)
    event = Event(id=uuid.uuid4(), type="vn.hotline111.notification.status-changed.v1", source="/tests", subject=None,
                  time=payload.occurred_at, key=str(referral["case_id"]), payload=payload, trace={})
    async with uow(db) as u:
        await on_notification(u, event)
        await u.commit()


async def state(db, referral_id) -> dict:
    async with db[0].connect() as conn:
        return dict((await conn.execute(select(referrals).where(referrals.c.id == referral_id))).mappings().one())


async def test_every_alert_failed_escalates_at_once(db, referrer):
    _case, referral = await a_referral(db, referrer, "25")
    email, sms = uuid.uuid4(), uuid.uuid4()
    for n in (email, sms):
        await tell(db, referral, n, DeliveryStatus.created, 0)
    await tell(db, referral, email, DeliveryStatus.permanent_failure, 1)
    assert (await state(db, referral["id"]))["due_step"] == "remind"  # the SMS may still arrive
    await tell(db, referral, sms, DeliveryStatus.technical_failure, 2)
    now = await state(db, referral["id"])
    assert (now["due_step"], now["due_at"]) == ("escalate", T0 + timedelta(minutes=2))
    async with uow(db) as u:  # long before the acknowledgement deadline
        fired = await fire_due(u, referrer, T0 + timedelta(minutes=3))
    assert (fired.reminders, fired.escalations) == (0, 1)  # only this referral is due, 3 min in
    assert (await state(db, referral["id"]))["escalated_at"] is not None


async def test_one_delivered_alert_means_the_unit_was_told(db, referrer):
    _case, referral = await a_referral(db, referrer, "25")
    email, sms = uuid.uuid4(), uuid.uuid4()
    for n in (email, sms):
        await tell(db, referral, n, DeliveryStatus.created, 0)
    await tell(db, referral, email, DeliveryStatus.delivered, 1)
    await tell(db, referral, sms, DeliveryStatus.permanent_failure, 2)
    now = await state(db, referral["id"])
    assert (now["status"], now["due_step"]) == ("notified", "remind")
    # A late, out-of-order "sending" for a settled alert does not reopen it.
    await tell(db, referral, email, DeliveryStatus.sending, 3)
    await tell(db, referral, sms, DeliveryStatus.permanent_failure, 4)
    assert (await state(db, referral["id"]))["due_step"] == "remind"
