"""A worker that dies mid-send leaves its message "sending" under a lease that runs out. The reconciler settles
it without a blind resend: by the provider's lookup when the provider has it (never sent again), back in the
queue when the provider never got it, or it is a webhook (receivers deduplicate by webhook-id) or an email
(SMTP cannot be asked; sent again under the same Message-ID), and technical-failure "unconfirmed-after-crash"
for an SMS through a provider that cannot be asked. A crash is forged in the database: the state
a worker leaves when it dies at that point."""
from datetime import UTC, datetime, timedelta

import pytest

from devstack.procs import free_port
from tests.notify.pipeline import (
    Receiver, created, email, emails, mailbox, notify, number, park_pending, sms, unique_path,
)
from tests.support import eventually

GONE = datetime.now(UTC) - timedelta(minutes=5)  # a lease that ran out long ago


@pytest.fixture(autouse=True)
async def parked(db):
    await park_pending(db[0])


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


def generic_only(gateway) -> list[dict]:
    return [p for p in gateway.providers() if p["adapter"] == "generic"]


async def claimed(n, referral) -> dict:
    """The referral's one message, claimed by the dispatcher (sending, leased), its provider not called."""
    await n.handle(referral)
    [row] = await n.rows(referral.referral_id)
    [claim] = await n.dispatcher.claim()
    assert claim["id"] == row["id"]
    return await n.row(row["id"])


async def test_an_sms_the_provider_took_is_settled_by_its_lookup_and_never_sent_again(db, stack, routes, sms_gateway):
    phone = number()
    async with notify(db, stack, routes, sms_providers=generic_only(sms_gateway)) as n:
        referral = created(sms(phone))
        await n.handle(referral)
        [row] = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
        delivered = await eventually(lambda: _delivered(n, row["id"]), 15)
        # The worker died after the gateway took it and before it wrote the answer down.
        await n.set(row["id"], status="sending", provider_ref=None, provider_code=None, sent_at=None,
                    delivered_at=None, leased_until=GONE)
        await n.reconciler.once(datetime.now(UTC))
        row = await n.row(row["id"])
        assert (row["status"], row["provider_ref"], row["provider_code"], row["leased_until"]) == (
            "delivered", delivered["provider_ref"], "delivered", None)
        assert row["delivered_at"] is not None
        assert await n.send_due() == []
        await n.reconciler.once(datetime.now(UTC))  # settled for good: nothing more happens to it
        assert await n.row(row["id"]) == row
    assert [m["id"] for m in await sms_gateway.messages(phone)] == [delivered["provider_ref"]]


async def _delivered(n, notification_id):
    row = await n.row(notification_id)
    return row if row["status"] == "delivered" else None


async def test_an_sms_the_provider_never_got_is_queued_again_and_sent_once(db, stack, routes, sms_gateway):
    phone = number()
    async with notify(db, stack, routes, sms_providers=generic_only(sms_gateway)) as n:
        row = await claimed(n, created(sms(phone)))
        # The worker died after choosing the provider, before calling it.
        await n.set(row["id"], provider="local-generic", leased_until=GONE)
        await n.reconciler.once(datetime.now(UTC))
        requeued = await n.row(row["id"])
        assert (requeued["status"], requeued["leased_until"], requeued["provider_ref"]) == ("sending", None, None)
        [row] = await n.settle(row["id"])
    assert (row["status"] in ("sent", "delivered"), row["attempts"]) == (True, 2)
    [message] = await sms_gateway.messages(phone)
    assert message["id"] == row["provider_ref"] and message["reference"] == str(row["id"])


async def test_a_message_whose_worker_died_before_choosing_a_provider_is_queued_again(db, stack, routes):
    address = mailbox()
    async with notify(db, stack, routes) as n:
        row = await claimed(n, created(email(address)))
        await n.set(row["id"], leased_until=GONE)  # no provider chosen: nobody was called
        await n.reconciler.once(datetime.now(UTC))
        [row] = await n.settle(row["id"])
    assert row["status"] == "delivered" and len(await emails(stack, address)) == 1


async def test_an_email_whose_worker_died_mid_send_is_sent_again_under_the_same_message_id(db, stack, routes):
    address = mailbox()
    async with notify(db, stack, routes) as n:
        referral = created(email(address))
        await n.handle(referral)
        [row] = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
        # The worker died after SMTP took it and before it wrote the answer down; SMTP cannot be asked.
        await n.set(row["id"], status="sending", provider_code=None, provider_ref=None, sent_at=None,
                    delivered_at=None, leased_until=GONE)
        await n.reconciler.once(datetime.now(UTC))
        requeued = await n.row(row["id"])
        assert (requeued["status"], requeued["leased_until"]) == ("sending", None)
        [row] = await n.settle(row["id"])
        assert "technical-failure" not in await n.reported(row["id"])  # referral never hears of a failure
    assert (row["status"], row["attempts"]) == ("delivered", 2)
    # Two copies reached the server, as one message: the same Message-ID, the notification's own.
    copies = await emails(stack, address)
    assert [m["headers"]["Message-ID"] for m in copies] == [f"<{row['id']}@hotline111.example>"] * 2


async def test_a_webhook_whose_worker_died_mid_send_is_sent_again_under_its_webhook_id(db, stack, routes, receiver):
    path = unique_path()
    async with notify(db, stack, routes) as n:
        referral = created()
        await n.webhook_endpoint(referral.agency_unit_id, receiver.url(path))
        row = await claimed(n, referral)
        await n.set(row["id"], provider="webhook", leased_until=GONE)
        await n.reconciler.once(datetime.now(UTC))
        assert (await n.row(row["id"]))["leased_until"] is None
        [row] = await n.settle(row["id"])
    assert row["status"] == "delivered"
    assert [d.headers["webhook-id"] for d in receiver.at(path)] == [str(row["id"])]


async def test_an_sms_through_a_provider_that_cannot_be_asked_is_failed_unconfirmed(db, stack, routes,
                                                                                    sms_gateway):
    twilio = [p for p in sms_gateway.providers() if p["adapter"] == "twilio"]  # no lookup by our reference
    phone = number()
    async with notify(db, stack, routes, sms_providers=twilio) as n:
        row = await claimed(n, created(sms(phone)))
        await n.set(row["id"], provider="local-twilio", leased_until=GONE)
        await n.reconciler.once(datetime.now(UTC))
        row = await n.row(row["id"])
    # The window the design leaves: it may have gone out, so it is failed rather than sent twice.
    assert (row["status"], row["provider_code"]) == ("technical-failure", "unconfirmed-after-crash")
    assert await sms_gateway.messages(phone) == []


async def test_a_sent_sms_whose_receipt_never_came_is_looked_up(db, stack, routes, sms_gateway):
    phone = number()
    await sms_gateway.control(to=phone, out_of_order=True)  # its final state first (no wait on a failing callback)
    nobody = f"http://127.0.0.1:{free_port()}"  # the gateway's receipts find nobody there
    async with notify(db, stack, routes, sms_providers=generic_only(sms_gateway), sms_callback_base_url=nobody,
                      notify_receipt_wait_s=300) as n:
        referral = created(sms(phone))
        await n.handle(referral)
        [row] = await n.settle(*[r["id"] for r in await n.rows(referral.referral_id)])
        assert row["status"] == "sent"

        async def gateway_says_delivered():
            [message] = await sms_gateway.messages(phone)
            return message["status"] == "delivered"

        await eventually(gateway_says_delivered, 15)
        await n.reconciler.once(datetime.now(UTC))
        assert await n.row(row["id"]) == row  # not yet: its receipt may still come
        await n.reconciler.once(datetime.now(UTC) + timedelta(seconds=301))
        row = await n.row(row["id"])
    assert (row["status"], row["provider_code"]) == ("delivered", "delivered") and row["delivered_at"]
