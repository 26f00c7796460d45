"""A failed alert moves on to the unit's next contact (same channel first); when no contact is left and
every alert failed for good, nobody was told, and the referral escalates at the scanner's next pass
instead of at its acknowledgement deadline. A delivered alert only moves it to notified."""
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import get_args

from sqlalchemy import select, update

from runtime.consumer import Event
from schemas.events.notifications import DeliveryStatus, NotificationStatusChanged
from schemas.events.referrals import FailedDelivery
from services.referral.deadlines.scanner import fire_due
from services.referral.directory.model import Channel, Contact
from services.referral.directory.repository import save
from services.referral.models import outbox, referrals
from services.referral.referrals.delivery import FAILED, on_notification
from tests.referral.own_database import T0, report, uow

FALLBACK = "vn.hotline111.referral.contact-fallback.v1"
# No unit of the seed directory has two contacts on one channel (each has at most an SMS and an email),
# so the tests that need more give a province police command more contacts first.
A, B, C = (f"duty-{n}@police-46.example" for n in "abc")
SMS = "+840000094601"


async def a_referral(db, referrer, province: str, unit_code: str | None = None) -> tuple:
    case = await report(db, referrer, province_code=province)
    query = select(referrals).where(referrals.c.case_id == case.case_id).order_by(referrals.c.created_at)
    if unit_code is not None:
        query = query.where(referrals.c.agency_unit_id == await unit_id(db, referrer, unit_code))
    async with db[0].connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return case, row


async def unit_id(db, referrer, code: str) -> uuid.UUID:
    async with uow(db) as u:
        return (await referrer.directory.current(u.session)).by_code[code].id


async def give_contacts(db, referrer, code: str, *contacts: tuple[str, str]) -> None:
    """Replace a unit's contacts, in this order of preference."""
    async with uow(db) as u:
        unit = (await referrer.directory.current(u.session)).by_code[code]
        await save(u.session, [replace(unit, contacts=tuple(
            Contact(Channel(channel), address, preference=n) for n, (channel, address) in enumerate(contacts, 1)))])
        await u.commit()


async def tell(db, referrer, referral, notification_id: uuid.UUID, status: DeliveryStatus, minutes: int = 1, *,
               channel: str = "email", recipient: str | None = None) -> None:
    payload = NotificationStatusChanged(
        notification_id=notification_id, referral_id=referral["id"], case_id=referral["case_id"], channel=channel,
        status=status, occurred_at=T0 + timedelta(minutes=minutes), attempts=1, recipient=recipient)
    event = Event(id=uuid.uuid4(), type="vn.hotline111.notification.status-changed.v1", source="/tests", subject=None,
                  time=payload.occurred_at, key=str(referral["case_id"]), payload=payload, trace={})
    async with uow(db) as u:
        await on_notification(referrer)(u, event)
        await u.commit()


async def state(db, referral_id) -> dict:
    async with db[0].connect() as conn:
        return dict((await conn.execute(select(referrals).where(referrals.c.id == referral_id))).mappings().one())


async def events(db, referral_id, type_: str) -> list[dict]:
    async with db[0].connect() as conn:
        rows = await conn.execute(select(outbox.c.payload, outbox.c.key, outbox.c.subject).where(
            outbox.c.type == type_, outbox.c.payload["referral_id"].astext == str(referral_id)).order_by(outbox.c.seq))
        return [dict(r) for r in rows.mappings()]


def contact(channel: str, address: str) -> dict:
    return {"channel": channel, "address": address}


def test_the_failed_states_named_in_the_fallback_event_are_notify_s():
    assert set(get_args(FailedDelivery)) == {s.value for s in FAILED}


async def test_the_unit_is_alerted_first_on_its_most_preferred_contact_of_each_channel(db, referrer):
    await give_contacts(db, referrer, "police-province-46", ("email", A), ("sms", SMS), ("email", B))
    _case, referral = await a_referral(db, referrer, "46", "police-province-46")
    firsts = [contact("email", A), contact("sms", SMS)]
    assert referral["alerted"] == firsts
    [created] = await events(db, referral["id"], "vn.hotline111.referral.created.v1")
    assert created["payload"]["contacts"] == firsts


async def test_a_failed_email_falls_back_to_the_next_email_then_escalates_when_every_contact_failed(db, referrer):
    await give_contacts(db, referrer, "police-province-46", ("email", A), ("sms", SMS), ("email", B), ("email", C))
    case, referral = await a_referral(db, referrer, "46", "police-province-46")
    a, sms, b, c = (uuid.uuid4() for _ in range(4))
    await tell(db, referrer, referral, a, DeliveryStatus.created, 0, recipient=A)
    await tell(db, referrer, referral, sms, DeliveryStatus.created, 0, channel="sms", recipient=SMS)
    await tell(db, referrer, referral, a, DeliveryStatus.permanent_failure, 1, recipient=A)
    [fallback] = await events(db, referral["id"], FALLBACK)
    assert (fallback["key"], fallback["subject"]) == (str(case.case_id), case.case_number)
    assert fallback["payload"] | {"occurred_at": None} == {
        "referral_id": str(referral["id"]), "case_id": str(case.case_id), "case_number": case.case_number,
        "agency_unit_id": str(referral["agency_unit_id"]), "contact": contact("email", B), "failed_channel": "email",
        "failed_status": "permanent-failure", "occurred_at": None}
    # The same failure told again (a late copy, a replay under a new event id) changes nothing.
    await tell(db, referrer, referral, a, DeliveryStatus.permanent_failure, 2, recipient=A)
    assert len(await events(db, referral["id"], FALLBACK)) == 1
    now = await state(db, referral["id"])
    assert now["alerted"] == [contact("email", A), contact("sms", SMS), contact("email", B)]

    # The SMS fails: no SMS contact is left, so the unit's next contact of any channel, the third email.
    await tell(db, referrer, referral, sms, DeliveryStatus.technical_failure, 3, channel="sms", recipient=SMS)
    assert [e["payload"]["contact"] for e in await events(db, referral["id"], FALLBACK)] == [
        contact("email", B), contact("email", C)]
    await tell(db, referrer, referral, b, DeliveryStatus.created, 4, recipient=B)
    await tell(db, referrer, referral, b, DeliveryStatus.temporary_failure, 5, recipient=B)
    # No contact is left, but notify has not reported on the last one yet: it may still get through.
    assert (await state(db, referral["id"]))["due_step"] == "remind"
    await tell(db, referrer, referral, c, DeliveryStatus.created, 6, recipient=C)
    await tell(db, referrer, referral, c, DeliveryStatus.permanent_failure, 7, recipient=C)
    now = await state(db, referral["id"])
    assert (now["status"], now["due_step"], now["due_at"]) == ("created", "escalate", T0 + timedelta(minutes=7))
    assert len(await events(db, referral["id"], FALLBACK)) == 2
    async with uow(db) as u:  # long before the acknowledgement deadline
        fired = await fire_due(u, referrer, T0 + timedelta(minutes=8))
    assert fired.escalations >= 1
    assert (await state(db, referral["id"]))["escalated_at"] is not None


async def test_a_delivered_alert_means_no_fallback(db, referrer):
    await give_contacts(db, referrer, "police-province-51", ("email", A), ("sms", SMS), ("email", B))
    _case, referral = await a_referral(db, referrer, "51", "police-province-51")
    a, sms = uuid.uuid4(), uuid.uuid4()
    await tell(db, referrer, referral, a, DeliveryStatus.created, 0, recipient=A)
    await tell(db, referrer, referral, sms, DeliveryStatus.created, 0, channel="sms", recipient=SMS)
    await tell(db, referrer, referral, a, DeliveryStatus.delivered, 1, recipient=A)
    await tell(db, referrer, referral, sms, DeliveryStatus.technical_failure, 2, channel="sms", recipient=SMS)
    now = await state(db, referral["id"])
    assert (now["status"], now["due_step"]) == ("notified", "remind")
    assert now["alerted"] == [contact("email", A), contact("sms", SMS)]
    assert await events(db, referral["id"], FALLBACK) == []


async def test_every_alert_failed_escalates_at_once(db, referrer):
    # A unit of the seed directory: one SMS and one email contact, both alerted first.
    _case, referral = await a_referral(db, referrer, "25", "police-province-25")
    assert [c["channel"] for c in referral["alerted"]] == ["sms", "email"]
    sms_to, email_to = (c["address"] for c in referral["alerted"])
    email, sms = uuid.uuid4(), uuid.uuid4()
    await tell(db, referrer, referral, email, DeliveryStatus.created, 0, recipient=email_to)
    await tell(db, referrer, referral, sms, DeliveryStatus.created, 0, channel="sms", recipient=sms_to)
    await tell(db, referrer, referral, email, DeliveryStatus.permanent_failure, 1, recipient=email_to)
    assert (await state(db, referral["id"]))["due_step"] == "remind"  # the SMS may still arrive
    await tell(db, referrer, referral, sms, DeliveryStatus.technical_failure, 2, channel="sms", recipient=sms_to)
    now = await state(db, referral["id"])
    assert (now["due_step"], now["due_at"]) == ("escalate", T0 + timedelta(minutes=2))
    assert await events(db, referral["id"], FALLBACK) == []  # nobody left to fall back on
    async with uow(db) as u:  # long before the acknowledgement deadline
        fired = await fire_due(u, referrer, T0 + timedelta(minutes=3))
    assert (fired.reminders, fired.escalations) == (0, 1)  # only this referral is due, 3 min in
    assert (await state(db, referral["id"]))["escalated_at"] is not None


async def test_a_referral_from_before_fallbacks_escalates_when_every_alert_reported_failed(db, referrer):
    # Made before v1.1: every contact was alerted, and notify did not say to whom.
    _case, referral = await a_referral(db, referrer, "52")
    async with uow(db) as u:
        await u.session.execute(update(referrals).where(referrals.c.id == referral["id"]).values(alerted=None))
        await u.commit()
    email, sms = uuid.uuid4(), uuid.uuid4()
    for n in (email, sms):
        await tell(db, referrer, referral, n, DeliveryStatus.created, 0)
    await tell(db, referrer, referral, email, DeliveryStatus.permanent_failure, 1)
    assert (await state(db, referral["id"]))["due_step"] == "remind"
    await tell(db, referrer, referral, sms, DeliveryStatus.technical_failure, 2, channel="sms")
    assert (await state(db, referral["id"]))["due_step"] == "escalate"
    assert await events(db, referral["id"], FALLBACK) == []


async def test_one_delivered_alert_means_the_unit_was_told(db, referrer):
    _case, referral = await a_referral(db, referrer, "25")
    email, sms = uuid.uuid4(), uuid.uuid4()
    for n in (email, sms):
        await tell(db, referrer, referral, n, DeliveryStatus.created, 0)
    await tell(db, referrer, referral, email, DeliveryStatus.delivered, 1)
    await tell(db, referrer, referral, sms, DeliveryStatus.permanent_failure, 2, channel="sms")
    now = await state(db, referral["id"])
    assert (now["status"], now["due_step"]) == ("notified", "remind")
    # A late, out-of-order "sending" for a settled alert does not reopen it.
    await tell(db, referrer, referral, email, DeliveryStatus.sending, 3)
    await tell(db, referrer, referral, sms, DeliveryStatus.permanent_failure, 4, channel="sms")
    assert (await state(db, referral["id"]))["due_step"] == "remind"


async def test_a_webhook_tells_the_unit_but_its_failure_is_no_contact_to_fall_back_from(db, referrer):
    _case, referral = await a_referral(db, referrer, "24", "police-province-24")
    sms_to, email_to = (c["address"] for c in referral["alerted"])
    hook, email, sms = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    url = "https://police-24.example/hooks/111"
    for n, channel, to in ((hook, "webhook", url), (email, "email", email_to), (sms, "sms", sms_to)):
        await tell(db, referrer, referral, n, DeliveryStatus.created, 0, channel=channel, recipient=to)
    await tell(db, referrer, referral, hook, DeliveryStatus.permanent_failure, 1, channel="webhook", recipient=url)
    await tell(db, referrer, referral, email, DeliveryStatus.permanent_failure, 2, recipient=email_to)
    await tell(db, referrer, referral, sms, DeliveryStatus.technical_failure, 3, channel="sms", recipient=sms_to)
    now = await state(db, referral["id"])
    assert now["due_step"] == "escalate"  # every contact failed: the webhook's own failure changed nothing
    assert await events(db, referral["id"], FALLBACK) == []

    _case, other = await a_referral(db, referrer, "24", "police-province-24")
    hook = uuid.uuid4()
    await tell(db, referrer, other, hook, DeliveryStatus.created, 0, channel="webhook", recipient=url)
    await tell(db, referrer, other, hook, DeliveryStatus.delivered, 1, channel="webhook", recipient=url)
    assert (await state(db, other["id"]))["status"] == "notified"  # the unit's system has it
