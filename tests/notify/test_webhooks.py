"""Webhooks: a real receiver on loopback checks every delivery with the standardwebhooks library. A 2xx is
delivered, 408/429/5xx and silence are retried, other answers are permanent (a 410 deactivates the
endpoint). During a rotation the old and new secrets both sign, then only the new one. Administrators
manage endpoints over HTTP; a secret is shown once."""
import asyncio
import base64
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from runtime import crypto
from runtime.auth import AuthSettings, install_auth, issue_token
from runtime.db import notify_channel, session_factory
from runtime.problems import install_problem_handlers
from runtime.service import ServiceRuntime
from runtime.uow import UnitOfWork
from services.notify.delivery.outcome import SendOutcome, Verdict
from services.notify.delivery.providers import OutgoingMessage
from services.notify.delivery.webhook import (
    STRUCTURED_CONTENT_TYPE, WebhookProvider, cloudevent_for, is_gone,
)
from services.notify.models import metadata, outbox, webhook_secrets
from services.notify.settings import NotifySettings
from services.notify.webhooks import service
from services.notify.webhooks.repository import SECRET_CONTEXT
from services.notify.webhooks.schemas import EndpointIn, RotateIn
from services.notify.webhooks.views import router

CE_TYPE = "vn.hotline111.referral.created.v1"
DATA = {"case_number": "111-2026-000123", "urgency": "high", "province_code": "01", "agency_unit_name": "Công an"}
AUTH_SECRET = "webhook-tests-" + "x" * 32


# ---- a receiver --------------------------------------------------------------------------------------------

@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    verified_by: list[str]  # which of the receiver's secrets verify this delivery


def verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


class Receiver:
    """An agency system on 127.0.0.1: answers `status` after `delay` seconds, and checks each delivery
    against `secrets` as any Standard Webhooks receiver would."""

    def __init__(self):
        self.reset()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(self.path, headers, body.decode(),
                                                  [s for s in receiver.secrets if verifies(s, body, headers)]))
                status, delay = receiver.status, receiver.delay
                time.sleep(delay)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", "/moved")
                reply = b"" if status in (204, 304) else b'{"ok": true}'
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *args: None  # a sender that timed out has hung up: expected here
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        self.status, self.delay, self.secrets, self.received = 200, 0.0, [], []

    def url(self, path: str = "/hooks/111") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def fresh(receiver):
    receiver.reset()


@pytest.fixture(scope="module", autouse=True)
def keys():
    # notify encrypts secrets under the process keyring, like intake's personal data
    crypto.configure_keys(crypto.new_key("webhooks1"))


@pytest.fixture(scope="module")
async def provider(db):
    p = WebhookProvider(service.secret_source(session_factory(db[0])), timeout_s=2.0)
    yield p
    await p.aclose()


def uow(db) -> UnitOfWork:
    return UnitOfWork(session_factory(db[0]), outbox, "/tests/notify-webhooks", notify_channel("notify"))


async def new_endpoint(db, url: str, unit: uuid.UUID | None = None):
    async with uow(db) as u:
        return await service.create(u, EndpointIn(agency_unit_id=unit or uuid.uuid4(), url=url))


async def rotate(db, endpoint_id, expires_at: datetime | None = None, now: datetime | None = None):
    async with uow(db) as u:
        return await service.rotate(u, endpoint_id, RotateIn(expires_at=expires_at), now)


async def secrets_at(db, endpoint_id, now: datetime) -> list[str]:
    async with session_factory(db[0])() as session:
        return await service.signing_secrets(session, endpoint_id, now)


def message(endpoint) -> OutgoingMessage:
    notification_id = str(uuid.uuid4())
    body = cloudevent_for(CE_TYPE, "/hotline111/notify", DATA["case_number"], DATA, notification_id, datetime.now(UTC))
    return OutgoingMessage(notification_id=notification_id, recipient=endpoint.url, body=body,
                           webhook_endpoint_id=endpoint.id)


def signatures(received: Received) -> list[str]:
    return received.headers["webhook-signature"].split(" ")


# ---- the CloudEvent ----------------------------------------------------------------------------------------

def test_the_body_is_a_structured_mode_cloudevent():
    at = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    event = json.loads(cloudevent_for(CE_TYPE, "/hotline111/notify", "111-2026-000123", DATA, "n-1", at))
    assert event == {"specversion": "1.0", "id": "n-1", "source": "/hotline111/notify", "type": CE_TYPE,
                     "subject": "111-2026-000123", "time": "2026-03-01T08:30:00+00:00",
                     "datacontenttype": "application/json", "data": DATA}
    assert "subject" not in json.loads(cloudevent_for(CE_TYPE, "/s", "", {}, "n-2", at))
    with pytest.raises(ValueError):
        cloudevent_for(CE_TYPE, "/s", "x", {}, "n-3", datetime(2026, 3, 1))  # no offset: not RFC 3339


def test_a_secret_is_whsec_and_base64_of_random_bytes():
    secret = service.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert len(base64.b64decode(service.new_secret(64)[6:])) == 64
    with pytest.raises(ValueError):
        service.new_secret(16)


# ---- sending -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [200, 202, 204])
async def test_a_2xx_is_delivered_and_the_receiver_verifies_it(db, receiver, provider, status):
    endpoint = await new_endpoint(db, receiver.url())
    receiver.status, receiver.secrets = status, [endpoint.secret, service.new_secret()]
    sent = replace(message(endpoint), headers={"X-Hotline-Referral-Id": str(uuid.uuid4())})
    assert await provider.send(sent) == SendOutcome(Verdict.delivered, str(status))
    (got,) = receiver.received
    assert got.verified_by == [endpoint.secret]  # the endpoint's secret, and only it
    assert got.headers["content-type"] == STRUCTURED_CONTENT_TYPE
    assert got.headers["webhook-id"] == sent.notification_id  # the same on every retry: receivers dedupe
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 5
    assert {h for h in got.headers if h.startswith("webhook-")} == {"webhook-id", "webhook-timestamp",
                                                                      "webhook-signature"}
    assert "x-hotline-referral-id" not in got.headers  # the receiver gets what is signed, nothing else of ours
    assert got.body == sent.body and json.loads(got.body)["data"] == DATA


@pytest.mark.parametrize("status, verdict", [
    (500, Verdict.retry), (503, Verdict.retry), (408, Verdict.retry), (429, Verdict.retry),
    (400, Verdict.permanent), (401, Verdict.permanent), (404, Verdict.permanent), (410, Verdict.permanent),
    (302, Verdict.permanent),
])
async def test_answers_map_to_retry_or_permanent(db, receiver, provider, status, verdict):
    endpoint = await new_endpoint(db, receiver.url())
    receiver.status = status
    outcome = await provider.send(message(endpoint))
    assert (outcome.verdict, outcome.code) == (verdict, str(status))
    if verdict is Verdict.retry:
        assert outcome.exhausts_to == "temporary-failure"  # the receiver's trouble, not ours
    assert [r.path for r in receiver.received] == ["/hooks/111"]  # one request: a redirect is not followed


async def test_no_answer_in_time_is_retried(db, receiver):
    endpoint = await new_endpoint(db, receiver.url())
    receiver.delay = 3.0
    impatient = WebhookProvider(service.secret_source(session_factory(db[0])), timeout_s=0.3)
    try:
        started = time.monotonic()
        outcome = await impatient.send(message(endpoint))
        assert time.monotonic() - started < 2.0
    finally:
        await impatient.aclose()
    assert (outcome.verdict, outcome.code, outcome.exhausts_to) == (Verdict.retry, "timeout", "temporary-failure")


async def test_a_receiver_that_is_down_is_retried(db, provider):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = await new_endpoint(db, f"http://127.0.0.1:{port}/hooks")
    outcome = await provider.send(message(endpoint))
    assert (outcome.verdict, outcome.code) == (Verdict.retry, "ConnectError")


async def test_a_410_deactivates_the_endpoint_and_nothing_more_is_sent(db, receiver, provider):
    unit = uuid.uuid4()
    endpoint = await new_endpoint(db, receiver.url(), unit)
    receiver.status = 410
    outcome = await provider.send(message(endpoint))
    assert is_gone(outcome) and not is_gone(SendOutcome(Verdict.permanent, "404"))
    async with uow(db) as u:  # the dispatcher does this in the transaction that records the outcome
        assert await service.deactivate(u.session, endpoint.id)
        await u.commit()
    async with session_factory(db[0])() as session:
        assert await service.endpoints_for(session, unit) == []
        assert await service.deactivate(session, endpoint.id) is False  # already inactive
    assert await secrets_at(db, endpoint.id, datetime.now(UTC)) == []
    assert await provider.send(message(endpoint)) == SendOutcome(Verdict.permanent, "endpoint-inactive")
    assert len(receiver.received) == 1


async def test_endpoints_for_gives_the_active_endpoints_of_the_unit(db, receiver):
    unit = uuid.uuid4()
    first = await new_endpoint(db, receiver.url("/a"), unit)
    second = await new_endpoint(db, receiver.url("/b"), unit)
    await new_endpoint(db, receiver.url("/other"))
    async with session_factory(db[0])() as session:
        found = await service.endpoints_for(session, unit)
    assert [(e.id, e.url, e.active) for e in found] == [(first.id, first.url, True), (second.id, second.url, True)]


async def test_a_message_without_its_endpoint_fails_without_a_request(db, receiver, provider):
    endpoint = await new_endpoint(db, receiver.url())
    bare = OutgoingMessage(notification_id=str(uuid.uuid4()), recipient=endpoint.url, body="{}")
    assert await provider.send(bare) == SendOutcome(Verdict.permanent, "no-endpoint-id")
    assert receiver.received == []


# ---- secrets -----------------------------------------------------------------------------------------------

async def test_during_the_grace_period_both_secrets_sign_then_only_the_new_one(db, receiver, provider):
    endpoint = await new_endpoint(db, receiver.url())
    old = endpoint.secret
    expires = datetime.now(UTC) + timedelta(seconds=2)
    rotated = await rotate(db, endpoint.id, expires)
    new = rotated.secret
    assert new != old and [s.expires_at for s in rotated.secrets] == [None, expires]
    assert await secrets_at(db, endpoint.id, datetime.now(UTC)) == [new, old]

    receiver.secrets = [old, new]
    assert (await provider.send(message(endpoint))).verdict is Verdict.delivered
    grace = receiver.received[-1]
    assert len(signatures(grace)) == 2
    assert grace.verified_by == [old, new]  # a receiver holding either one accepts it

    await asyncio.sleep((expires - datetime.now(UTC)).total_seconds() + 0.1)
    assert (await provider.send(message(endpoint))).verdict is Verdict.delivered
    after = receiver.received[-1]
    assert len(signatures(after)) == 1 and after.verified_by == [new]


async def test_the_previous_secret_signs_24_hours_by_default_and_a_rotation_never_extends_it(db, receiver):
    endpoint = await new_endpoint(db, receiver.url())
    now = datetime.now(UTC)
    second = (await rotate(db, endpoint.id, now=now)).secret
    assert len(await secrets_at(db, endpoint.id, now + timedelta(hours=23))) == 2
    assert await secrets_at(db, endpoint.id, now + timedelta(hours=24, seconds=1)) == [second]

    third = (await rotate(db, endpoint.id, now + timedelta(days=10), now=now)).secret
    later = await secrets_at(db, endpoint.id, now + timedelta(days=2))
    assert later == [third, second]  # the first still stops at 24 h: asking for 10 days did not extend it


async def test_a_leaked_secret_is_retired_at_once(db, receiver):
    endpoint = await new_endpoint(db, receiver.url())
    now = datetime.now(UTC)
    fresh = await rotate(db, endpoint.id, now - timedelta(seconds=1), now=now)
    assert await secrets_at(db, endpoint.id, now) == [fresh.secret]
    assert [s.expires_at for s in fresh.secrets] == [None]


async def test_secrets_are_encrypted_at_rest(db, receiver):
    endpoint = await new_endpoint(db, receiver.url())
    async with db[0].connect() as conn:
        (stored,) = (await conn.execute(select(webhook_secrets.c.secret)
                                        .where(webhook_secrets.c.endpoint_id == endpoint.id))).scalars()
    raw = endpoint.secret.removeprefix("whsec_")
    assert raw.encode() not in stored and base64.b64decode(raw) not in stored
    assert crypto.kid_of(stored) == "webhooks1"
    assert crypto.decrypt_text(stored, SECRET_CONTEXT) == endpoint.secret
    with pytest.raises(crypto.DecryptionError):  # bound to its column
        crypto.decrypt_text(stored, "intake.cases.narrative")


# ---- the API -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
async def api(db):
    app = FastAPI()
    install_problem_handlers(app)
    auth = install_auth(app, AuthSettings(auth_mode="hs256", auth_hs256_secret=AUTH_SECRET)).settings
    runtime = ServiceRuntime("notify", metadata, NotifySettings(database_url=db[1], db_pool_size=2))
    app.state.runtime = runtime
    app.include_router(router)

    def as_(*roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(auth, sub='webhook-admin', roles=roles)}"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notify") as client:
        yield client, as_
    await runtime.engine.dispose()


def field_of(r: httpx.Response) -> list[str]:
    assert r.headers["content-type"] == "application/problem+json", r.text
    return [e["field"] for e in r.json()["errors"]]


async def test_api_only_administrators_manage_webhooks(api):
    client, as_ = api
    assert (await client.get("/webhooks")).status_code == 401
    assert (await client.get("/webhooks", headers=as_("operator", "supervisor"))).status_code == 403
    assert (await client.get("/webhooks", headers=as_("admin"))).status_code == 200


async def test_api_create_shows_the_secret_once_and_get_never(api, receiver):
    client, as_ = api
    admin = as_("admin")
    unit = str(uuid.uuid4())
    r = await client.post("/webhooks", headers=admin,
                          json={"agency_unit_id": unit, "url": receiver.url(), "description": "Police CAD"})
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and r.headers["etag"] == '"1"' and r.headers["cache-control"] == "no-store"
    assert r.headers["location"] == f"/webhooks/{created['id']}"
    assert (created["active"], created["description"], len(created["secrets"])) == (True, "Police CAD", 1)

    one = await client.get(f"/webhooks/{created['id']}", headers=admin)
    listed = await client.get("/webhooks", params={"agency_unit_id": unit}, headers=admin)
    for answer in (one, listed):
        assert answer.status_code == 200 and secret not in answer.text and '"secret"' not in answer.text
    assert one.headers["etag"] == '"1"'
    assert [e["id"] for e in listed.json()] == [created["id"]]
    assert (await client.get(f"/webhooks/{uuid.uuid4()}", headers=admin)).status_code == 404


@pytest.mark.parametrize("url", [
    "http://agency.example/hooks",  # plain http off this machine
    "ftp://agency.example/hooks",
    "/hooks",
    "https://user:pass@agency.example/hooks",
    "https://agency.example/hooks#frag",
    "https://agency.example:99999/hooks",
    "https://agency.example/" + "a" * 320,
    "https://agency example/hooks",
    "https://agency_1.example/hooks",  # not a host name
    "https://cơquan.example/hooks",  # an international domain goes in its xn-- form
])
async def test_api_a_bad_url_is_a_422_naming_url(api, url):
    client, as_ = api
    r = await client.post("/webhooks", headers=as_("admin"), json={"agency_unit_id": str(uuid.uuid4()), "url": url})
    assert r.status_code == 422 and field_of(r) == ["url"]
    assert url not in r.text  # input is never echoed


async def test_api_http_is_allowed_to_this_machine_only_and_urls_are_kept_in_canonical_form(api):
    client, as_ = api
    for url, kept in [("http://localhost:9000/hooks", "http://localhost:9000/hooks"),
                      ("http://127.0.0.1", "http://127.0.0.1/"),
                      ("HTTPS://Agency.Example:443/Hooks?k=1", "https://agency.example/Hooks?k=1")]:
        r = await client.post("/webhooks", headers=as_("admin"), json={"agency_unit_id": str(uuid.uuid4()), "url": url})
        assert r.status_code == 201, r.text
        assert r.json()["url"] == kept  # the form messages to it are queued with (recipients.normalise_webhook)


async def test_api_patch_needs_if_match(api, receiver):
    client, as_ = api
    admin = as_("admin")
    created = (await client.post("/webhooks", headers=admin,
                                 json={"agency_unit_id": str(uuid.uuid4()), "url": receiver.url()})).json()
    path = f"/webhooks/{created['id']}"
    r = await client.patch(path, headers=admin, json={"active": False})
    assert r.status_code == 428 and field_of(r) == ["If-Match"]
    r = await client.patch(path, headers=admin | {"If-Match": '"7"'}, json={"active": False})
    assert r.status_code == 412 and field_of(r) == ["If-Match"]
    r = await client.patch(path, headers=admin | {"If-Match": '"1"'}, json={"url": "http://agency.example/x"})
    assert r.status_code == 422 and field_of(r) == ["url"]
    r = await client.patch(path, headers=admin | {"If-Match": '"1"'}, json={"description": None})
    assert r.status_code == 422 and field_of(r) == ["description"]

    r = await client.patch(path, headers=admin | {"If-Match": '"1"'},
                           json={"active": False, "url": receiver.url("/v2"), "description": "moved"})
    assert r.status_code == 200 and r.headers["etag"] == '"2"'
    assert (r.json()["active"], r.json()["url"], r.json()["description"]) == (False, receiver.url("/v2"), "moved")
    same = await client.patch(path, headers=admin | {"If-Match": '"2"'}, json={"description": "moved"})
    assert same.headers["etag"] == '"2"'  # nothing changed, so neither did the ETag


async def test_api_rotate_returns_a_new_secret_once(api, receiver):
    client, as_ = api
    admin = as_("admin")
    created = (await client.post("/webhooks", headers=admin,
                                 json={"agency_unit_id": str(uuid.uuid4()), "url": receiver.url()})).json()
    path = f"/webhooks/{created['id']}"
    r = await client.post(f"{path}/rotate-secret", headers=admin)
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"] != created["secret"] and r.headers["cache-control"] == "no-store"
    current, previous = rotated["secrets"]
    assert current["expires_at"] is None
    left = datetime.fromisoformat(previous["expires_at"]) - datetime.now(UTC)
    assert timedelta(hours=23, minutes=59) < left <= timedelta(hours=24)
    assert r.headers["etag"] == '"2"'  # its secrets are part of what GET shows

    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = await client.post(f"{path}/rotate-secret", headers=admin, json={"expires_at": soon})
    assert r.status_code == 200 and len(r.json()["secrets"]) == 3
    too_late = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    r = await client.post(f"{path}/rotate-secret", headers=admin, json={"expires_at": too_late})
    assert r.status_code == 422 and field_of(r) == ["expires_at"]
    r = await client.post(f"{path}/rotate-secret", headers=admin, json={"expires_at": "2026-01-01T00:00:00"})
    assert r.status_code == 422 and field_of(r) == ["expires_at"]  # no offset
    assert rotated["secret"] not in (await client.get(path, headers=admin)).text
