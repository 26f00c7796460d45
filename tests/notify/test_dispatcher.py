"""The dispatcher against real receivers: email through the stack's SMTP sink, SMS through the local gateway,
webhooks to a receiver on loopback. Each failure class ends where its provider's map says, retries back off,
SMS fails over to the next provider and comes back when the first recovers, emergencies go first, rate limits
defer without counting an attempt, and drills (test mode, magic recipients) send nothing anywhere.

Times are read from what the dispatcher recorded (attempts, next_attempt_at), never from the wall clock; a test
that skips a scheduled wait brings the retry forward after reading its schedule."""
import time
import uuid

import pytest

from devstack.procs import free_port
from services.notify.delivery import simulated
from services.notify.delivery.failover import Circuit, HealthPolicy
from services.notify.webhooks import service as webhooks
from tests.notify.pipeline import (
    Receiver, SmsGateway, created, email, emails, mailbox, notify, number, park_pending, sms, unique_path,
)
from tests.support import eventually


@pytest.fixture(autouse=True)
async def parked(db):
    await park_pending(db[0])


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


def only(providers: list[dict], adapter: str) -> list[dict]:
    return [p for p in providers if p["adapter"] == adapter]


async def _async(value):
    return value


# ---- each channel delivers ----------------------------------------------------------------------------------

async def test_an_email_is_delivered_through_smtp(db, stack, routes):
    address = mailbox()
    async with notify(db, stack, routes) as n:
        referral = created(email(address))
        await n.handle(referral)
        [row] = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
        assert (row["status"], row["provider"], row["attempts"], row["leased_until"]) == ("delivered", "smtp", 1, None)
        assert row["provider_code"] == "250" and row["sent_at"] and row["delivered_at"]
        assert await n.reported(row["id"]) == ["created", "sending", "delivered"]
    [mail] = await emails(stack, address)
    assert mail["subject"] == row["subject"] and mail["body"].strip() == row["body"].strip()
    assert mail["headers"]["X-Hotline-Notification-Id"] == str(row["id"])
    assert mail["headers"]["X-Hotline-Referral-Id"] == str(referral.referral_id)
    assert str(row["id"]) in mail["headers"]["Message-ID"]  # a copy sent twice is one message to a mail client


async def test_a_webhook_is_delivered_signed_to_the_units_receiver(db, stack, routes, receiver):
    unit, path = uuid.uuid4(), unique_path()
    async with notify(db, stack, routes) as n:
        endpoint = await n.webhook_endpoint(unit, receiver.url(path))
        referral = created(unit=unit)  # no contacts: the webhook only
        event_id = await n.handle(referral)
        [row] = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
    assert (row["status"], row["provider"], row["provider_code"], row["attempts"]) == ("delivered", "webhook", "204", 1)
    [delivery] = receiver.at(path)
    assert delivery.verified_by(endpoint.secret) and delivery.headers["webhook-id"] == str(row["id"])
    assert delivery.event["id"] == str(event_id) and delivery.event["data"]["case_number"] == referral.case_number


# ---- failures ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("adapter", "code"), [("generic", "invalid_number"), ("twilio", "21211")])
async def test_an_sms_the_provider_refuses_fails_for_good_without_a_retry(db, stack, routes, sms_gateway, adapter,
                                                                          code):
    phone = number()
    await sms_gateway.control(to=phone, mode="reject_4xx")
    async with notify(db, stack, routes, sms_providers=only(sms_gateway.providers(), adapter)) as n:
        referral = created(sms(phone))
        await n.handle(referral)
        [row] = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
        assert (row["status"], row["provider_code"], row["attempts"]) == ("permanent-failure", code, 1)
        assert await n.send_due() == []  # nothing left to retry
        assert (await n.row(row["id"]))["attempts"] == 1
    assert await sms_gateway.messages(phone) == []


async def test_sms_5xx_is_retried_with_growing_backoff_then_is_a_technical_failure(db, stack, routes, sms_gateway):
    phone = number()
    await sms_gateway.control(to=phone, mode="fail_5xx")
    settings = {"notify_retry_base_s": 10.0, "notify_retry_max_s": 600.0, "notify_max_attempts": 4}
    async with notify(db, stack, routes, sms_providers=only(sms_gateway.providers(), "generic"), **settings) as n:
        referral = created(sms(phone))
        await n.handle(referral)
        [notification_id] = [r["id"] for r in await n.rows(referral.referral_id)]
        waits = []
        for attempt in (1, 2, 3):
            assert [r["id"] for r in await n.send_due()] == [notification_id]
            row = await n.row(notification_id)
            assert (row["status"], row["attempts"], row["provider_code"], row["leased_until"]) == (
                "sending", attempt, "unavailable", None)
            waits.append((row["next_attempt_at"] - row["updated_at"]).total_seconds())
            assert await n.send_due() == []  # not due before its time
            await n.due_now(notification_id)
        assert [r["id"] for r in await n.send_due()] == [notification_id]
        row = await n.row(notification_id)
        assert (row["status"], row["attempts"], row["provider_code"]) == ("technical-failure", 4, "unavailable")
        # A retry says nothing new; the failure, once exhausted, is reported once.
        assert await n.reported(notification_id) == ["created", "sending", "technical-failure"]
    # Exponential with jitter: each wait is half to all of base × 2^(attempt-1), so each is longer than the last.
    for attempt, wait in enumerate(waits, 1):
        ceiling = 10.0 * 2 ** (attempt - 1)
        assert ceiling / 2 - 1 <= wait <= ceiling, (attempt, waits)
    assert waits == sorted(waits) and len(set(waits)) == 3
    assert await sms_gateway.messages(phone) == []


async def test_an_sms_timeout_is_retried_then_is_a_technical_failure(db, stack, routes, sms_gateway):
    phone = number()
    # Held well past our timeout: the gateway takes it only after every attempt has given up.
    await sms_gateway.control(to=phone, mode="timeout", delay_ms=5_000, receipt="none")
    providers = only(sms_gateway.providers(timeout_s=0.2), "generic")
    async with notify(db, stack, routes, sms_providers=providers, notify_max_attempts=2) as n:
        referral = created(sms(phone))
        await n.handle(referral)
        [row] = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
    assert (row["status"], row["attempts"], row["provider_code"]) == ("technical-failure", 2, "timeout")


async def test_a_send_that_timed_out_but_was_taken_is_not_sent_again(db, stack, routes, sms_gateway):
    phone = number()
    # The gateway takes the message 0.4 s after we gave up at 0.1 s, and sends no receipt.
    await sms_gateway.control(to=phone, mode="timeout", delay_ms=400, receipt="none")
    providers = only(sms_gateway.providers(timeout_s=0.1), "generic")
    async with notify(db, stack, routes, sms_providers=providers, notify_retry_base_s=60.0) as n:
        referral = created(sms(phone))
        await n.handle(referral)
        [notification_id] = [r["id"] for r in await n.rows(referral.referral_id)]
        await n.send_due()
        row = await n.row(notification_id)
        assert (row["status"], row["provider_code"], row["provider"]) == ("sending", "timeout", "local-generic")
        [taken] = await eventually(lambda: sms_gateway.messages(phone), 10)
        await sms_gateway.control(to=phone, mode="ok", delay_ms=0)  # a blind resend would now go straight through
        await n.due_now(notification_id)
        await n.send_due()
        row = await n.row(notification_id)
    # Asked by our reference before sending again: the gateway had it.
    assert (row["status"], row["provider_ref"], row["leased_until"]) == ("sent", taken["id"], None)
    assert taken["reference"] == str(notification_id)
    assert [m["id"] for m in await sms_gateway.messages(phone)] == [taken["id"]]


async def test_an_email_server_that_is_down_is_retried_then_is_a_technical_failure(db, stack, routes):
    async with notify(db, stack, routes, smtp_port=free_port()) as n:  # nothing listens there
        referral = created(email(mailbox()))
        await n.handle(referral)
        [row] = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
    assert (row["status"], row["attempts"], row["provider"]) == ("technical-failure", 3, "smtp")
    assert row["provider_code"] in ("SMTPConnectError", "ConnectionRefusedError", "OSError")


async def test_a_webhook_receiver_5xx_is_retried_then_is_a_temporary_failure(db, stack, routes, receiver):
    unit, path = uuid.uuid4(), unique_path()
    receiver.status[path] = 503
    async with notify(db, stack, routes) as n:
        await n.webhook_endpoint(unit, receiver.url(path))
        referral = created(unit=unit)
        await n.handle(referral)
        [row] = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
    # The receiver's side, not ours: temporary-failure, after every attempt.
    assert (row["status"], row["attempts"], row["provider_code"]) == ("temporary-failure", 3, "503")
    assert [d.headers["webhook-id"] for d in receiver.at(path)] == [str(row["id"])] * 3  # one id to deduplicate by


@pytest.mark.parametrize("status", [404, 410])
async def test_a_webhook_receiver_4xx_is_permanent_and_410_deactivates_the_endpoint(db, stack, routes, receiver,
                                                                                    status):
    unit, path = uuid.uuid4(), unique_path()
    receiver.status[path] = status
    async with notify(db, stack, routes) as n:
        endpoint = await n.webhook_endpoint(unit, receiver.url(path))
        referral = created(unit=unit)
        await n.handle(referral)
        [row] = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
        assert (row["status"], row["attempts"], row["provider_code"]) == ("permanent-failure", 1, str(status))
        async with n.runtime.sessions() as session:
            active = [e.id for e in await webhooks.endpoints_for(session, unit)]
        # Gone for good: nothing more is queued for it. Any other 4xx may be fixed by the agency: kept.
        assert active == ([] if status == 410 else [endpoint.id])
        later = created(unit=unit)
        await n.handle(later)
        assert len(await n.rows(later.referral_id)) == (0 if status == 410 else 1)
    assert len(receiver.at(path)) == 1


# ---- failover and recovery ---------------------------------------------------------------------------------

@pytest.mark.parametrize("trouble", ["connection-refused", "5xx"])
async def test_sms_fails_over_to_the_next_provider_and_comes_back_when_the_first_recovers(
        db, stack, routes, supervisor, sms_gateway, trouble):
    first = SmsGateway(supervisor, f"sms-first-{trouble}")  # its own process: it fails alone
    if trouble == "5xx":
        await first.start()
        await first.control(mode="fail_5xx")
    [primary] = only(first.providers(generic="primary"), "generic")  # priority 1
    [backup] = only(sms_gateway.providers(twilio="backup"), "twilio")  # priority 2
    health = HealthPolicy(failure_threshold=3, cooldown_s=1.0)
    try:
        async with notify(db, stack, routes, sms_providers=[primary, backup], health=health) as n:
            def state():
                return {s.name: s for s in n.senders.health(time.monotonic())}

            async def send(count: int) -> list[dict]:
                referrals = [created(sms(number())) for _ in range(count)]
                for referral in referrals:
                    await n.handle(referral)
                ids = [r["id"] for referral in referrals for r in await n.rows(referral.referral_id)]
                return await n.settle(*ids)

            # The first provider fails every message; each is retried through the second.
            moved = await send(4)
            assert {(r["status"] in ("sent", "delivered"), r["provider"], r["attempts"]) for r in moved} == {
                (True, "backup", 2)}
            for row in moved:
                [message] = await sms_gateway.messages(row["recipient"])
                assert message["api"] == "twilio" and message["id"] == row["provider_ref"]
            assert state()["primary"].circuit is Circuit.open

            # It recovers; once its cool-down is over, a trial message goes to it, and on success all traffic.
            if trouble == "5xx":
                await first.control(mode="ok")
            else:
                await first.start()  # on the port the provider has been refused at
            await eventually(lambda: _async(state()["primary"].circuit is Circuit.half_open), 10, 0.05)
            healths = []
            for _ in range(3):
                [row] = await send(1)
                assert (row["provider"], row["attempts"]) == ("primary", 1)
                assert [m["id"] for m in await first.messages(row["recipient"])] == [row["provider_ref"]]
                assert await sms_gateway.messages(row["recipient"]) == []
                healths.append(state()["primary"].health)
            assert state()["primary"].circuit is Circuit.closed
            assert healths == sorted(healths) and healths[0] < healths[-1] < 1  # drifting back, not reset
    finally:
        first.stop()


# ---- order and limits --------------------------------------------------------------------------------------

async def test_emergencies_are_claimed_before_older_normal_messages(db, stack, routes):
    async with notify(db, stack, routes, notify_batch_size=1) as n:
        order = [created(email(mailbox()), urgency=u) for u in ("normal", "high", "emergency")]
        for referral in order:  # the normal one is the oldest
            await n.handle(referral)
        claimed = [(await n.send_due())[0]["referral_id"] for _ in order]
    assert claimed == [order[2].referral_id, order[1].referral_id, order[0].referral_id]


async def test_a_recipient_over_its_burst_is_deferred_without_an_attempt_and_sent_later(db, stack, routes):
    address = mailbox("busy")
    async with notify(db, stack, routes, notify_recipient_burst=2, notify_recipient_rate_per_s=5.0) as n:
        referrals = [created(email(address)) for _ in range(3)]
        for referral in referrals:
            await n.handle(referral)
        ids = [r["id"] for referral in referrals for r in await n.rows(referral.referral_id)]
        assert len(await n.send_due()) == 3
        rows = [await n.row(i) for i in ids]
        assert sorted(r["status"] for r in rows) == ["delivered", "delivered", "sending"]
        [held] = [r for r in rows if r["status"] == "sending"]
        # Back in the queue, unleased, for when the bucket has a token again: no attempt counted.
        assert (held["attempts"], held["leased_until"], held["provider"]) == (0, None, None)
        assert held["next_attempt_at"] > held["updated_at"]
        assert len(await emails(stack, address)) == 2
        rows = await n.settle(*ids)
    assert {(r["status"], r["attempts"]) for r in rows} == {("delivered", 1)}
    assert len(await emails(stack, address)) == 3


async def test_an_emergency_is_not_held_by_the_providers_bucket_that_the_backlog_emptied(db, stack, routes,
                                                                                         sms_gateway):
    """The provider bucket paces normal messages; an emergency behind a drained bucket goes at once, where it
    would otherwise bounce back to the queue behind them."""
    async with notify(db, stack, routes, sms_providers=only(sms_gateway.providers(), "generic"),
                      notify_provider_burst=1, notify_provider_rate_per_s=0.01) as n:
        backlog = [created(sms(number())) for _ in range(2)]
        for referral in backlog:
            await n.handle(referral)
        await n.send_due()  # the bucket's one token goes to the first; the second waits, unattempted
        urgent = created(sms(number()), urgency="emergency")
        await n.handle(urgent)
        await n.send_due()
        (hot,) = await n.rows(urgent.referral_id)
        normal = [r for referral in backlog for r in await n.rows(referral.referral_id)]
    assert hot["status"] in ("sent", "delivered") and hot["attempts"] == 1
    # The bucket held one token: one normal message went, the other waits for the next, unattempted.
    assert sorted(r["attempts"] for r in normal) == [0, 1]


async def test_test_mode_simulates_delivery_and_sends_nothing(db, stack, routes, sms_gateway, receiver):
    unit, phone, address, path = uuid.uuid4(), number(), mailbox("drill"), unique_path()
    async with notify(db, stack, routes, sms_providers=sms_gateway.providers(), notify_test_mode=True) as n:
        await n.webhook_endpoint(unit, receiver.url(path))
        referral = created(sms(phone), email(address), unit=unit)
        await n.handle(referral)
        rows = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
    assert {(r["channel"], r["status"], r["provider"], r["attempts"]) for r in rows} == {
        (c, "delivered", "test-mode", 1) for c in ("sms", "email", "webhook")}
    assert await emails(stack, address) == [] and await sms_gateway.messages(phone) == []
    assert receiver.at(path) == []


async def test_magic_recipients_simulate_each_outcome_and_send_nothing(db, stack, routes, sms_gateway):
    unit = uuid.uuid4()
    async with notify(db, stack, routes, sms_providers=sms_gateway.providers()) as n:
        for url in simulated.WEBHOOK:
            await n.webhook_endpoint(unit, url)
        contacts = [sms(x) for x in simulated.SMS] + [email(x) for x in simulated.EMAIL]
        referral = created(*contacts, unit=unit)
        await n.handle(referral)
        rows = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
    outcomes = {(r["channel"], r["recipient"]): (r["status"], r["attempts"], r["provider"]) for r in rows}
    expected = {"delivered": ("delivered", 1), "temporary-failure": ("temporary-failure", 3),
                "permanent-failure": ("permanent-failure", 1)}
    for channel, table in simulated.RECIPIENTS.items():
        for recipient, outcome in table.items():
            assert outcomes[(channel, recipient)] == (*expected[outcome], "simulator"), (channel, recipient)
    for phone in simulated.SMS:
        assert await sms_gateway.messages(phone) == []
    for address in simulated.EMAIL:
        assert await emails(stack, address) == []
