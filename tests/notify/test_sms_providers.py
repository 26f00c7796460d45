"""The SMS adapters against the local gateway, run as its real process (devstack/sms_gateway.py): sends,
refusals, signed receipts, lookups; the code maps; the receipt parsers under arbitrary input.

Receipts go to a small HTTP catcher in this test that records each callback request as notify's callback
route gets it (raw body, headers, URL), and hands it to the adapter's receipt()."""
import asyncio
import json
import os
import random
import sys
import threading
import time
import uuid
from types import SimpleNamespace
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devstack.procs import Supervisor, free_port
from devstack.sms_gateway import GatewayCredentials
from schemas.events.notifications import DeliveryStatus as S
from services.notify.delivery.outcome import NEVER_RECEIVED, Verdict
from services.notify.delivery.providers import BadCallback, OutgoingMessage
from services.notify.delivery.sms import (
    TwilioSmsProvider, build_sms_provider, build_sms_providers,
)
from services.notify.delivery.sms.codes import (
    GENERIC_STATUS, TWILIO_STATUS, generic_status, twilio_error, twilio_status,
)
from services.notify.delivery.sms.generic import sign_body
from services.notify.delivery.sms.twilio import twilio_signature
from services.notify.delivery.states import moves_forward
from services.notify.settings import NotifySettings
from tests.support import eventually

ADAPTERS = ("generic", "twilio")


# -- the gateway process and a callback catcher ---------------------------------------------------
@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    port, creds = free_port(), GatewayCredentials.new()
    sup = Supervisor(log_dir=tmp_path_factory.mktemp("sms-gateway"))
    sup.start("sms", [sys.executable, "-m", "devstack.sms_gateway"],
              {**os.environ, **creds.env(), "SMS_GATEWAY_PORT": str(port)})
    url = f"http://127.0.0.1:{port}"
    try:
        sup.wait_ready("sms", f"{url}/healthz", timeout=30)
        yield SimpleNamespace(url=url, creds=creds)
    finally:
        sup.stop_all()


class Catcher:
    """Records every callback POST as it arrives; serves on its own thread and loop."""

    def __init__(self):
        self.calls: list[dict] = []

        async def callback(request: Request) -> Response:
            self.calls.append({"name": request.path_params["name"], "body": await request.body(),
                               "headers": request.headers, "url": str(request.url)})
            return Response(status_code=204)

        app = Starlette(routes=[Route("/callbacks/sms/{name}", callback, methods=["POST"])])
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def for_ref(self, provider_ref: str) -> list[dict]:
        def ref(call):  # find the message id without trusting the parser under test
            if call["name"].endswith("twilio"):
                return dict(httpx.QueryParams(call["body"].decode())).get("MessageSid")
            return json.loads(call["body"]).get("id")
        return [c for c in self.calls if ref(c) == provider_ref]


@pytest.fixture(scope="module")
def catcher():
    c = Catcher()
    c.thread.start()
    deadline = time.monotonic() + 10
    while not c.server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield c
    c.server.should_exit = True
    c.thread.join(5)


@pytest.fixture(scope="module")
async def providers(gateway, catcher):
    """Both adapters as notify builds them, from the SMS_PROVIDERS the devstack gives notify."""
    settings = NotifySettings(sms_providers=gateway.creds.providers(gateway.url), sms_callback_base_url=catcher.url)
    built = build_sms_providers(settings)
    by_adapter = {("twilio" if isinstance(p, TwilioSmsProvider) else "generic"): p for p in built}
    yield by_adapter
    for p in built:
        await p.aclose()


@pytest.fixture
async def http(gateway):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        yield client


def number() -> str:
    return "+8490" + "".join(random.choice("0123456789") for _ in range(7))


def message(to: str) -> OutgoingMessage:
    return OutgoingMessage(notification_id=str(uuid.uuid4()), recipient=to, body="111: vụ việc HN-2026-0001, khẩn")


async def control(http, **change) -> None:
    (await http.post("/control", json=change)).raise_for_status()


async def receipts(provider, catcher, provider_ref: str, count: int) -> list:
    calls = await eventually(lambda: _async(len(catcher.for_ref(provider_ref)) >= count
                                            and catcher.for_ref(provider_ref)), 15)
    return [provider.receipt(c["body"], c["headers"], c["url"]) for c in calls]


async def _async(value):
    return value


# -- sending -----------------------------------------------------------------------------------
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_send_is_accepted_and_receipts_are_verified_and_mapped(providers, catcher, http, adapter):
    provider, to = providers[adapter], number()
    msg = message(to)
    outcome = await provider.send(msg)
    assert outcome.verdict is Verdict.accepted and outcome.provider_ref
    assert outcome.code == ("accepted" if adapter == "generic" else "queued")

    [stored] = (await http.get("/messages", params={"to": to})).json()
    assert stored["id"] == outcome.provider_ref and stored["body"] == msg.body
    assert stored["callback_url"] == f"{catcher.url}/callbacks/sms/{provider.name}" == provider.callback_url
    if adapter == "generic":  # our reference travels where the API takes one; Twilio has no such field
        assert stored["reference"] == msg.notification_id and stored["sender"] == "111"

    got = await receipts(provider, catcher, outcome.provider_ref, 2)
    assert [r.status for r in got] == [S.sent, S.delivered]
    assert {r.provider_ref for r in got} == {outcome.provider_ref}
    assert [r.code for r in got] == ["sent", "delivered"]
    assert got[0].reference == (msg.notification_id if adapter == "generic" else None)

    looked = await provider.lookup(outcome.provider_ref, msg.notification_id)
    assert (looked.provider_ref, looked.status, looked.code) == (outcome.provider_ref, S.delivered, "delivered")


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(("mode", "verdict", "codes"), [
    ("fail_5xx", Verdict.retry, {"generic": "unavailable", "twilio": "20503"}),
    ("throttle_429", Verdict.retry, {"generic": "throttled", "twilio": "20429"}),
    ("reject_4xx", Verdict.permanent, {"generic": "invalid_number", "twilio": "21211"}),
])
async def test_a_refusal_maps_to_its_verdict(providers, http, adapter, mode, verdict, codes):
    to = number()
    await control(http, to=to, mode=mode)
    outcome = await providers[adapter].send(message(to))
    assert (outcome.verdict, outcome.code, outcome.provider_ref) == (verdict, codes[adapter], None)
    if verdict is Verdict.retry:
        assert outcome.exhausts_to == "technical-failure"
    assert (await http.get("/messages", params={"to": to})).json() == []


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_slow_provider_is_a_timeout_and_a_retry(providers, gateway, catcher, http, adapter):
    to = number()
    await control(http, to=to, mode="timeout", delay_ms=1500)
    impatient = build_sms_provider(providers[adapter].config.model_copy(update={"timeout_s": 0.3}), catcher.url)
    try:
        started = time.monotonic()
        outcome = await impatient.send(message(to))
        assert outcome.verdict is Verdict.retry and outcome.code == "timeout"
        assert outcome.exhausts_to == "technical-failure" and time.monotonic() - started < 1.4
    finally:
        await impatient.aclose()


async def test_a_connection_refused_is_a_retry(providers):
    config = providers["generic"].config.model_copy(update={"url": f"http://127.0.0.1:{free_port()}/messages"})
    provider = build_sms_provider(config, "http://127.0.0.1:1")
    try:
        outcome = await provider.send(message(number()))
    finally:
        await provider.aclose()
    assert outcome.verdict is Verdict.retry and outcome.code == "ConnectError"


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_number_the_provider_refuses_is_permanent(providers, adapter):
    outcome = await providers[adapter].send(message("0901234567"))  # not E.164
    assert outcome.verdict is Verdict.permanent
    assert outcome.code == {"generic": "invalid_number", "twilio": "21211"}[adapter]


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_wrong_credentials_are_ours_to_fix_not_the_recipients(providers, catcher, adapter):
    config = providers[adapter].config
    secret = {"generic": {"auth": {"type": "bearer", "token": "wrong"}}, "twilio": {"auth_token": "wrong"}}[adapter]
    wrong = build_sms_provider(type(config).model_validate({**config.model_dump(), **secret}), catcher.url)
    try:
        outcome = await wrong.send(message(number()))
    finally:
        await wrong.aclose()
    assert outcome.verdict is Verdict.retry and outcome.exhausts_to == "technical-failure"
    assert outcome.code == {"generic": "unauthorized", "twilio": "20003"}[adapter]


async def test_generic_basic_auth_is_sent(providers, gateway, catcher):
    config = providers["generic"].config
    basic = {**config.model_dump(), "auth": {"type": "basic", "username": "hotline",
                                             "password": gateway.creds.api_token}}
    provider = build_sms_provider(type(config).model_validate(basic), catcher.url)
    try:
        assert (await provider.send(message(number()))).verdict is Verdict.accepted
    finally:
        await provider.aclose()


# -- receipts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("adapter", "receipt", "error_code", "status", "code"), [
    ("generic", "undelivered", None, S.temporary_failure, "undelivered:30003"),
    ("generic", "failed", None, S.permanent_failure, "failed"),
    ("twilio", "undelivered", None, S.temporary_failure, "undelivered:30003"),
    ("twilio", "undelivered", "30006", S.permanent_failure, "undelivered:30006"),
    ("twilio", "failed", None, S.technical_failure, "failed"),
    ("twilio", "failed", "21610", S.permanent_failure, "failed:21610"),
    ("twilio", "failed", "30002", S.technical_failure, "failed:30002"),
])
async def test_failure_receipts_map_by_status_and_error_code(providers, catcher, http, adapter, receipt,
                                                            error_code, status, code):
    provider, to = providers[adapter], number()
    await control(http, to=to, receipt=receipt, error_code=error_code)
    msg = message(to)
    outcome = await provider.send(msg)
    assert outcome.verdict is Verdict.accepted
    sent, final = await receipts(provider, catcher, outcome.provider_ref, 2)
    assert sent.status is S.sent and (final.status, final.code) == (status, code)
    looked = await provider.lookup(outcome.provider_ref, msg.notification_id)
    assert (looked.status, looked.code) == (status, code)


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_late_sent_after_delivered_is_read_and_does_not_move_the_message_back(providers, catcher, http,
                                                                                      adapter):
    provider, to = providers[adapter], number()
    await control(http, to=to, out_of_order=True)
    msg = message(to)
    outcome = await provider.send(msg)
    first, late = await receipts(provider, catcher, outcome.provider_ref, 2)
    assert (first.status, late.status) == (S.delivered, S.sent)
    assert not moves_forward(first.status, late.status)
    assert (await provider.lookup(outcome.provider_ref, msg.notification_id)).status is S.delivered


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_without_receipts_a_lookup_says_sent(providers, catcher, http, adapter):
    provider, to = providers[adapter], number()
    await control(http, to=to, receipt="none")
    msg = message(to)
    outcome = await provider.send(msg)
    await asyncio.sleep(0.3)
    assert catcher.for_ref(outcome.provider_ref) == []
    looked = await provider.lookup(outcome.provider_ref, msg.notification_id)
    assert looked.status is S.sent and looked.provider_ref == outcome.provider_ref


async def test_lookups_that_cannot_tell_say_none(providers, gateway, catcher):
    assert await providers["twilio"].lookup(None, str(uuid.uuid4())) is None  # Twilio has no lookup by reference
    assert await providers["twilio"].lookup("SM" + "0" * 32, "x") is None
    # The local gateway is looked up by our reference: one it never took was never received, so sending is safe.
    assert await providers["generic"].lookup(None, str(uuid.uuid4())) is NEVER_RECEIVED
    by_id = providers["generic"].config.model_copy(update={"status_url": f"{gateway.url}/messages/{{provider_ref}}"})
    provider = build_sms_provider(by_id, catcher.url)
    try:
        assert await provider.lookup("no-such-id", "x") is None  # a 404 by the provider's id cannot tell
        assert await provider.lookup(None, "x") is None  # its status URL needs the provider's id
    finally:
        await provider.aclose()


async def test_generic_lookup_by_our_reference(providers, gateway, catcher):
    # A send that timed out may still have been taken: our reference finds it without the provider's id.
    config = providers["generic"].config
    by_ref = config.model_copy(update={"status_url": f"{gateway.url}/messages/by-reference/{{reference}}"})
    provider = build_sms_provider(by_ref, catcher.url)
    try:
        msg = message(number())
        outcome = await provider.send(msg)
        looked = await eventually(lambda: provider.lookup(None, msg.notification_id), 10)
    finally:
        await provider.aclose()
    assert looked.provider_ref == outcome.provider_ref and looked.reference == msg.notification_id


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_tampered_or_unsigned_callback_is_refused(providers, catcher, adapter):
    provider, to = providers[adapter], number()
    outcome = await provider.send(message(to))
    call = (await eventually(lambda: _async(catcher.for_ref(outcome.provider_ref)), 15))[0]
    body, headers, url = call["body"], dict(call["headers"]), call["url"]
    provider.receipt(body, headers, url)  # the genuine one passes

    name = "x-twilio-signature" if adapter == "twilio" else "x-signature"
    forged = body.replace(b"sent", b"delivered")
    with pytest.raises(BadCallback):
        provider.receipt(forged, headers, url)  # body changed
    with pytest.raises(BadCallback):
        provider.receipt(body, {k: v for k, v in headers.items() if k != name}, url)  # no signature
    with pytest.raises(BadCallback):
        provider.receipt(body, {**headers, name: headers[name][:-4] + "AAA="}, url)  # signature changed
    with pytest.raises(BadCallback):
        other = providers["generic" if adapter == "twilio" else "twilio"]
        other.receipt(body, headers, url)  # another provider's callback
    if adapter == "twilio":
        with pytest.raises(BadCallback):
            provider.receipt(body, headers, url.replace("/callbacks/sms/", "/callbacks/sms/x"))  # URL is signed


# -- signatures, code maps, config -------------------------------------------------------------
def test_twilio_signature_matches_twilios_documented_example():
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    assert twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
                            params.items()) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


@pytest.mark.parametrize(("status", "error", "expected"), [
    ("queued", None, S.sent), ("accepted", None, S.sent), ("sending", None, S.sent), ("sent", None, S.sent),
    ("delivered", None, S.delivered), ("read", None, S.delivered), ("DELIVERED", None, S.delivered),
    ("undelivered", None, S.temporary_failure), ("undelivered", "30003", S.temporary_failure),
    ("undelivered", "30005", S.temporary_failure), ("undelivered", "30008", S.temporary_failure),
    ("undelivered", "30006", S.permanent_failure), ("undelivered", "21614", S.permanent_failure),
    ("undelivered", "99999", S.temporary_failure),
    ("failed", None, S.technical_failure), ("failed", "21211", S.permanent_failure),
    ("failed", "21610", S.permanent_failure), ("failed", "30001", S.technical_failure),
    ("failed", "30002", S.technical_failure), ("canceled", None, S.technical_failure),
    ("delivered", "30003", S.delivered),  # an error code never turns a success into a failure
    ("receiving", None, None), ("", None, None),
])
def test_twilio_code_map(status, error, expected):
    assert twilio_status(status, error) is expected


@pytest.mark.parametrize(("code", "expected"), [
    ("21211", S.permanent_failure), ("21614", S.permanent_failure), ("21610", S.permanent_failure),
    ("21606", S.technical_failure), ("20003", S.technical_failure), ("30003", S.temporary_failure),
    ("12345", None), (None, None),
])
def test_twilio_api_error_codes(code, expected):
    assert twilio_error(code) is expected


def test_every_mapped_state_is_one_a_receipt_may_carry():
    receivable = {S.sent, S.delivered, S.temporary_failure, S.permanent_failure, S.technical_failure}
    assert set(GENERIC_STATUS.values()) <= receivable and set(TWILIO_STATUS.values()) <= receivable


@pytest.mark.parametrize(("status", "overrides", "expected"), [
    ("accepted", None, S.sent), ("DELIVRD", None, S.delivered), ("Undeliv", None, S.temporary_failure),
    ("expired", None, S.temporary_failure), ("rejected", None, S.permanent_failure),
    ("error", None, S.technical_failure), ("weird", None, None),
    ("weird", {"WEIRD": S.delivered}, S.delivered), ("failed", {"failed": S.technical_failure}, S.technical_failure),
])
def test_generic_code_map_with_overrides(status, overrides, expected):
    assert generic_status(status, overrides) is expected


def test_sms_providers_config_is_read_from_the_environment(monkeypatch):
    creds = GatewayCredentials.new()
    monkeypatch.setenv("SMS_PROVIDERS", json.dumps(creds.providers("http://gw.example")))
    monkeypatch.setenv("SMS_CALLBACK_BASE_URL", "https://notify.example/")
    settings = NotifySettings()
    assert [(p.name, p.adapter, p.priority) for p in settings.sms_providers] == [
        ("local-generic", "generic", 1), ("local-twilio", "twilio", 2)]
    assert settings.sms_providers[1].auth_token.get_secret_value() == creds.auth_token
    assert creds.auth_token not in repr(settings) and creds.callback_secret not in repr(settings)
    providers = build_sms_providers(settings)
    assert [p.callback_url for p in providers] == ["https://notify.example/callbacks/sms/local-generic",
                                                   "https://notify.example/callbacks/sms/local-twilio"]
    assert all(p.channel == "sms" for p in providers)
    assert NotifySettings.model_fields["sms_providers"].default == []


@pytest.mark.parametrize("bad", [
    [{"name": "a", "adapter": "twilio", "account_sid": "AC1", "auth_token": "t", "from_number": "+84901234567"},
     {"name": "a", "adapter": "twilio", "account_sid": "AC1", "auth_token": "t", "from_number": "+84901234567"}],
    [{"name": "a", "adapter": "twilio", "account_sid": "AC1", "auth_token": "t"}],  # no sender
    [{"name": "a", "adapter": "twilio", "account_sid": "AC1", "auth_token": "t", "from_number": "+84901234567",
      "messaging_service_sid": "MG1"}],
    [{"name": "a", "adapter": "generic", "url": "https://x.example/sms"}],  # callback URL sent, callbacks unsigned
    [{"name": "Bad Name", "adapter": "generic", "url": "https://x.example/sms", "request": {"callback_url": None}}],
    [{"name": "a", "adapter": "generic", "url": "https://x.example/sms", "weight": 0,
      "request": {"callback_url": None}}],
    [{"name": "a", "adapter": "smpp"}],
])
def test_bad_provider_config_is_refused(bad):
    with pytest.raises(ValidationError):
        NotifySettings(sms_providers=bad)


# -- the receipt parsers under arbitrary input ----------------------------------------------------
_SECRET, _TOKEN, _URL = "callback-secret-for-hypothesis", "twilio-token-for-hypothesis", "http://n/callbacks/sms/t"
_CONFIGS = NotifySettings(sms_providers=GatewayCredentials(callback_secret=_SECRET, auth_token=_TOKEN)
                          .providers("http://gw"), sms_callback_base_url="http://n").sms_providers
_GENERIC, _TWILIO = (build_sms_provider(c, "http://n") for c in _CONFIGS)

_text = st.text(max_size=40)
headers = st.dictionaries(st.sampled_from(["content-type", "x-signature", "X-Twilio-Signature", "x-other"]),
                          st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60), max_size=3)
callback_dicts = st.fixed_dictionaries({}, optional={
    "id": _text | st.integers(), "status": st.sampled_from(["sent", "delivered", "undelivered", "failed", "x"]) | _text,
    "reference": _text, "error_code": _text | st.integers() | st.none()})
form_dicts = st.fixed_dictionaries({}, optional={
    "MessageSid": _text, "MessageStatus": st.sampled_from(["queued", "sent", "delivered", "undelivered", "failed"])
    | _text, "ErrorCode": st.sampled_from(["30003", "21211", "", "x"]) | _text})


def _only_bad_callback(parse):
    try:
        receipt = parse()
    except BadCallback:
        return None
    assert receipt.status in set(S) and receipt.provider_ref and len(receipt.code) <= 100
    return receipt


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=300) | callback_dicts.map(lambda d: json.dumps(d).encode()), hdrs=headers,
       signed=st.booleans())
def test_generic_receipt_parser_takes_anything(body, hdrs, signed):
    if signed:
        hdrs = {**hdrs, "X-Signature": sign_body(_SECRET, body)}
    receipt = _only_bad_callback(lambda: _GENERIC.receipt(body, hdrs, "http://n/x"))
    if receipt is not None:
        assert signed


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=300) | form_dicts.map(lambda d: str(httpx.QueryParams(d)).encode()), hdrs=headers,
       signed=st.booleans())
def test_twilio_receipt_parser_takes_anything(body, hdrs, signed):
    if signed:
        try:
            params = parse_qsl(body.decode(), keep_blank_values=True)
        except UnicodeDecodeError:
            params = []
        hdrs = {**hdrs, "X-Twilio-Signature": twilio_signature(_TOKEN, _URL, params)}
    receipt = _only_bad_callback(lambda: _TWILIO.receipt(body, hdrs, _URL))
    if receipt is not None:
        assert signed
