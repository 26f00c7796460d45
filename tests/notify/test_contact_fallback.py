"""notify alerts the contacts a referral names first, and on referral.contact-fallback the unit's next one,
with the same message. A channel it cannot send yet (SMS, until its provider comes) fails at once, so
referral moves on instead of waiting for the deadline. Every status it reports names the recipient."""
import asyncio
import socket
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from runtime.consumer import Event
from runtime.db import notify_channel, session_factory
from runtime.service import ServiceRuntime
from runtime.uow import UnitOfWork
from schemas.events.referrals import AgencyContact, ReferralContactFallback, ReferralCreated
from services.notify.models import metadata, notifications, outbox
from services.notify.notifications.dispatcher import Dispatcher
from services.notify.notifications.handlers import on_contact_fallback, on_referral_created
from services.notify.settings import NotifySettings
from tests.support import eventually

STATUS = "vn.hotline111.notification.status-changed.v1"
FIRST, NEXT, SMS = "duty-1@police.example", "duty-2@police.example", "+840000094601"


def uow(db) -> UnitOfWork:
    return UnitOfWork(session_factory(db[0]), outbox, "/tests/notify-own-database", notify_channel("notify"))


async def handle(db, handler, payload) -> None:
    event = Event(id=uuid.uuid4(), type="t", source="/tests", subject=None, time=datetime.now(UTC),
                  key=str(payload.case_id), payload=payload, trace={})
    async with uow(db) as u:
        await handler(u, event)
        await u.commit()


def created(*contacts: AgencyContact) -> ReferralCreated:
    return ReferralCreated(
        referral_id=uuid.uuid4(), case_id=uuid.uuid4(), case_number=f"111-2026-{uuid.uuid4().int % 10**6:06d}",
        agency_unit_id=uuid.uuid4(), agency_unit_name="Provincial Police", agency_kind="police_province",
        province_code="46", urgency="normal", acknowledge_by=datetime.now(UTC) + timedelta(hours=1),
        match_reason="test", contacts=list(contacts))


def fallback(referral: ReferralCreated, to: AgencyContact) -> ReferralContactFallback:
    return ReferralContactFallback(
        referral_id=referral.referral_id, case_id=referral.case_id, case_number=referral.case_number,
        agency_unit_id=referral.agency_unit_id, contact=to, failed_channel="email", failed_status="permanent-failure",
        occurred_at=datetime.now(UTC))


async def alerts(db, referral_id) -> list[dict]:
    async with db[0].connect() as conn:
        rows = await conn.execute(select(notifications).where(notifications.c.referral_id == referral_id)
                                  .order_by(notifications.c.created_at, notifications.c.recipient))
        return [dict(r) for r in rows.mappings()]


async def reported(db, referral_id) -> list[tuple]:
    """The statuses emitted for the referral's alerts, in outbox order: (recipient, channel, status)."""
    async with db[0].connect() as conn:
        rows = await conn.execute(select(outbox.c.payload).where(
            outbox.c.type == STATUS, outbox.c.payload["referral_id"].astext == str(referral_id)).order_by(outbox.c.seq))
        return [(p["recipient"], p["channel"], p["status"]) for p in rows.scalars()]


def email(address: str) -> AgencyContact:
    return AgencyContact(channel="email", address=address)


def sms(number: str) -> AgencyContact:
    return AgencyContact(channel="sms", address=number)


async def test_an_sms_contact_fails_at_once_and_after_the_email_is_queued(db):
    referral = created(sms(SMS), email(FIRST))
    await handle(db, on_referral_created, referral)
    rows = {r["channel"]: r for r in await alerts(db, referral.referral_id)}
    assert (rows["email"]["recipient"], rows["email"]["status"], rows["email"]["provider_code"]) == (
        FIRST, "created", None)
    assert (rows["sms"]["recipient"], rows["sms"]["status"], rows["sms"]["provider_code"]) == (
        SMS, "technical-failure", "channel-unsupported")
    assert rows["sms"]["subject"] == rows["email"]["subject"]  # recorded whole, for whoever reads the log
    # The email's status goes first, so referral knows of it before the SMS's failure.
    assert await reported(db, referral.referral_id) == [(FIRST, "email", "created"),
                                                        (SMS, "sms", "technical-failure")]


async def test_a_fallback_sends_the_same_message_to_the_next_contact_once(db):
    referral = created(email(FIRST))
    await handle(db, on_referral_created, referral)
    await handle(db, on_contact_fallback, fallback(referral, email(NEXT)))
    first, following = await alerts(db, referral.referral_id)
    assert (following["recipient"], following["status"], following["channel"]) == (NEXT, "created", "email")
    assert (following["subject"], following["body"]) == (first["subject"], first["body"])
    assert referral.case_number in following["subject"]
    # The same fallback again (a replay under a new event id) alerts nobody twice.
    await handle(db, on_contact_fallback, fallback(referral, email(NEXT)))
    assert len(await alerts(db, referral.referral_id)) == 2
    assert await reported(db, referral.referral_id) == [(FIRST, "email", "created"), (NEXT, "email", "created")]


async def test_a_fallback_to_an_sms_contact_fails_at_once(db):
    referral = created(email(FIRST))
    await handle(db, on_referral_created, referral)
    await handle(db, on_contact_fallback, fallback(referral, sms(SMS)))
    rows = {r["channel"]: r for r in await alerts(db, referral.referral_id)}
    assert (rows["sms"]["status"], rows["sms"]["provider_code"], rows["sms"]["attempts"]) == (
        "technical-failure", "channel-unsupported", 0)
    assert (await reported(db, referral.referral_id))[-1] == (SMS, "sms", "technical-failure")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens on it once closed: every connection is refused


async def _dispatch_until(db, stack, smtp_port: int, done) -> None:
    settings = NotifySettings(database_url=db[1], kafka_bootstrap_servers=stack.bootstrap, smtp_port=smtp_port,
                              notify_max_attempts=1)
    runtime = ServiceRuntime("notify", metadata, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(Dispatcher(runtime, settings).run(stop))
    try:
        await eventually(done, 30)
    finally:
        stop.set()
        await task
        await runtime.engine.dispose()


async def test_the_dispatcher_reports_delivery_and_failure_with_the_recipient(db, stack):
    referral = created(email(FIRST))
    await handle(db, on_referral_created, referral)

    async def settled():
        return (await reported(db, referral.referral_id))[-1][2] != "created"

    await _dispatch_until(db, stack, stack.ports.smtp, settled)
    assert (await reported(db, referral.referral_id))[-1] == (FIRST, "email", "delivered")

    await handle(db, on_contact_fallback, fallback(referral, email(NEXT)))
    await _dispatch_until(db, stack, _closed_port(), lambda: _failed(db, referral.referral_id))
    assert (await reported(db, referral.referral_id))[-1] == (NEXT, "email", "technical-failure")


async def _failed(db, referral_id) -> bool:
    return any(status == "technical-failure" for *_, status in await reported(db, referral_id))
