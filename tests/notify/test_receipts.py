"""Delivery receipts through notify's callback route, /callbacks/sms/<provider>: the gateway's own receipts over
HTTP (an SMS goes sent, then delivered or failed per the provider's code map), out of order (a late "sent"
changes nothing), and forged or stray ones (a bad signature, an unknown message: a 4xx, logged, nothing changed).
"""
import json
import uuid
from urllib.parse import urlencode

import pytest

from schemas.events.notifications import DeliveryStatus as D
from services.notify.delivery.sms.generic import sign_body
from services.notify.delivery.sms.twilio import twilio_signature
from tests.notify.pipeline import created, logged, notify, number, park_pending, sms
from tests.support import eventually

RECEIPTS = "services.notify.notifications.receipts"
ROUTE = "http://notify/callbacks/sms"  # the URL the in-process route sees, which a Twilio signature covers


@pytest.fixture(autouse=True)
async def parked(db):
    await park_pending(db[0])


def first(gateway, adapter: str) -> list[dict]:
    """Both of the gateway's providers, `adapter` first: it takes every message, and the route reads either's
    receipts."""
    providers = gateway.providers()
    for p in providers:
        p["priority"] = 1 if p["adapter"] == adapter else 2
    return providers


def name(adapter: str) -> str:
    return f"local-{adapter}"


async def sent_sms(n, phone: str) -> dict:
    """One SMS through the dispatcher: its row once the gateway has taken it."""
    referral = created(sms(phone))
    await n.handle(referral)
    [row] = await n.rows(referral.referral_id)
    await n.send_due()
    return await n.row(row["id"])


def signed(gateway, adapter: str, ref: str, status: str, *, reference: str | None = None,
           secret: str | None = None) -> tuple[str, bytes, dict]:
    """A receipt as the gateway would post it to notify: (url, body, headers)."""
    url = f"{ROUTE}/{name(adapter)}"
    if adapter == "generic":
        body = json.dumps({"id": ref, "status": status, "reference": reference}).encode()
        return url, body, {"content-type": "application/json",
                           "X-Signature": sign_body(secret or gateway.creds.callback_secret, body)}
    form = {"MessageSid": ref, "MessageStatus": status, "AccountSid": gateway.creds.account_sid}
    return url, urlencode(form).encode(), {
        "content-type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(secret or gateway.creds.auth_token, url, form.items())}


async def post(n, receipt: tuple[str, bytes, dict]):
    url, body, headers = receipt
    return await n.http.post(url, content=body, headers=headers)


@pytest.mark.parametrize("adapter", ["generic", "twilio"])
async def test_an_sms_is_sent_then_its_receipt_says_delivered(db, stack, routes, sms_gateway, adapter):
    phone = number()
    await sms_gateway.control(to=phone, receipt_delay_ms=300)  # the receipts come after our record of the send
    async with notify(db, stack, routes, sms_providers=first(sms_gateway, adapter)) as n:
        row = await sent_sms(n, phone)
        assert (row["status"], row["provider"], row["attempts"], row["leased_until"]) == (
            "sent", name(adapter), 1, None)
        assert row["sent_at"] and row["delivered_at"] is None
        [message] = await sms_gateway.messages(phone)
        assert message["id"] == row["provider_ref"] and message["body"] == row["body"]
        assert message["callback_url"] == f"{routes.url}/callbacks/sms/{name(adapter)}"

        async def delivered():
            now = await n.row(row["id"])
            return now if now["status"] == "delivered" else None

        row = await eventually(delivered, 15)
        assert row["provider_code"] == "delivered" and row["delivered_at"]
        assert await n.reported(row["id"]) == ["created", "sending", "sent", "delivered"]
    [message] = await sms_gateway.messages(phone)
    assert [(r["status"], r["http_status"]) for r in message["receipts"]] == [("sent", 204), ("delivered", 204)]


@pytest.mark.parametrize(("adapter", "receipt", "error_code", "status", "code"), [
    ("generic", "undelivered", None, D.temporary_failure, "undelivered:30003"),
    ("generic", "failed", None, D.permanent_failure, "failed"),
    ("twilio", "failed", "21610", D.permanent_failure, "failed:21610"),
    ("twilio", "failed", "30002", D.technical_failure, "failed:30002"),
])
async def test_a_failure_receipt_settles_the_sms_per_the_providers_map(db, stack, routes, sms_gateway, adapter,
                                                                       receipt, error_code, status, code):
    phone = number()
    await sms_gateway.control(to=phone, receipt=receipt, error_code=error_code, receipt_delay_ms=200)
    async with notify(db, stack, routes, sms_providers=first(sms_gateway, adapter)) as n:
        row = await sent_sms(n, phone)

        async def settled():
            now = await n.row(row["id"])
            return now if now["status"] != "sent" else None

        row = await eventually(settled, 15)
        assert (row["status"], row["provider_code"]) == (status, code)
        assert await n.reported(row["id"]) == ["created", "sending", "sent", status]
        assert await n.send_due() == []  # a receipt's failure is final: referral moves on to the next contact


@pytest.mark.parametrize("adapter", ["generic", "twilio"])
async def test_a_late_sent_after_delivered_changes_nothing(db, stack, routes, sms_gateway, adapter):
    phone = number()
    await sms_gateway.control(to=phone, out_of_order=True, receipt_delay_ms=200)
    async with notify(db, stack, routes, sms_providers=first(sms_gateway, adapter)) as n:
        row = await sent_sms(n, phone)

        async def both_answered():
            [message] = await sms_gateway.messages(phone)
            answered = [(r["status"], r.get("http_status")) for r in message["receipts"]]
            return answered if len(answered) == 2 and all(s for _, s in answered) else None

        # Both receipts were taken (a 2xx, so the gateway does not retry); only the first counted.
        assert await eventually(both_answered, 15) == [("delivered", 204), ("sent", 204)]
        row = await n.row(row["id"])
        assert (row["status"], row["provider_code"]) == ("delivered", "delivered")
        assert await n.reported(row["id"]) == ["created", "sending", "sent", "delivered"]


@pytest.mark.parametrize("adapter", ["generic", "twilio"])
async def test_a_badly_signed_receipt_is_refused_logged_and_changes_nothing(db, stack, routes, sms_gateway, adapter):
    phone = number()
    await sms_gateway.control(to=phone, receipt="none")  # it stays "sent" until a receipt comes
    async with notify(db, stack, routes, sms_providers=first(sms_gateway, adapter)) as n:
        row = await sent_sms(n, phone)
        assert row["status"] == "sent"
        forged = signed(sms_gateway, adapter, row["provider_ref"], "delivered", reference=str(row["id"]),
                        secret="not-the-providers-secret")
        unsigned = (forged[0], forged[1], {"content-type": forged[2]["content-type"]})
        for receipt in (forged, unsigned):
            with logged(RECEIPTS) as events:
                r = await post(n, receipt)
            assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
            assert [e["event"] for e in events] == ["receipt_refused"] and events[0]["provider"] == name(adapter)
        assert (await n.row(row["id"]))["status"] == "sent"
        assert await n.reported(row["id"]) == ["created", "sending", "sent"]
        # The same receipt, signed with the provider's secret, is taken.
        r = await post(n, signed(sms_gateway, adapter, row["provider_ref"], "delivered", reference=str(row["id"])))
        assert r.status_code == 204
        assert (await n.row(row["id"]))["status"] == "delivered"


async def test_a_receipt_for_an_unknown_message_is_a_404_logged_and_changes_nothing(db, stack, routes, sms_gateway):
    phone = number()
    await sms_gateway.control(to=phone, receipt="none")
    async with notify(db, stack, routes, sms_providers=first(sms_gateway, "generic")) as n:
        row = await sent_sms(n, phone)
        strays = [
            signed(sms_gateway, "generic", "no-such-message", "delivered", reference=str(uuid.uuid4())),
            # A real message id, but the message went through the other provider.
            signed(sms_gateway, "twilio", row["provider_ref"], "delivered"),
        ]
        for receipt in strays:
            with logged(RECEIPTS) as events:
                r = await post(n, receipt)
            assert r.status_code == 404 and r.json()["errors"][0]["field"] == "provider_ref"
            assert [e["event"] for e in events] == ["receipt_for_unknown_message"]
        r = await n.http.post(f"{ROUTE}/no-such-provider", content=b"{}")
        assert r.status_code == 404 and r.json()["errors"][0]["field"] == "provider"
        assert (await n.row(row["id"]))["status"] == "sent"
        assert await n.reported(row["id"]) == ["created", "sending", "sent"]


async def test_a_receipt_before_the_send_is_recorded_finds_the_message_by_our_reference(db, stack, routes,
                                                                                        sms_gateway):
    async with notify(db, stack, routes, sms_providers=first(sms_gateway, "generic")) as n:
        referral = created(sms(number()))
        await n.handle(referral)
        [row] = await n.rows(referral.referral_id)
        # The provider answered and called back before our worker wrote the provider's id down.
        [claimed] = await n.dispatcher.claim()
        await n.set(claimed["id"], provider="local-generic")
        r = await post(n, signed(sms_gateway, "generic", "gw-early-1", "delivered", reference=str(row["id"])))
        assert r.status_code == 204
        row = await n.row(row["id"])
    assert (row["status"], row["provider_ref"], row["provider_code"]) == ("delivered", "gw-early-1", "delivered")
