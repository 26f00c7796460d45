"""A local SMS gateway: speaks a generic JSON SMS API and Twilio's Messages API, keeps every message in
memory, calls back with signed delivery receipts, and misbehaves on request.

    python -m devstack.sms_gateway      # HTTP on 127.0.0.1:$SMS_GATEWAY_PORT (8026)

Generic JSON API (auth: `Bearer $SMS_GATEWAY_API_TOKEN`, or Basic with it as password; none if unset):
    POST /messages {"to", "body", "reference"?, "callback_url"?, ...} -> 202 {"id", "status": "accepted", ...}
    GET  /messages/{id}                                               -> {"id", "status", "reference", "error_code"}
    GET  /messages/by-reference/{reference}                           -> the latest message with that reference
    receipts: POST callback_url {"id", "status", "reference", "error_code"?},
              X-Signature: hex HMAC-SHA256 of the raw body keyed by $SMS_GATEWAY_CALLBACK_SECRET
Twilio (Basic $SMS_GATEWAY_TWILIO_ACCOUNT_SID:$SMS_GATEWAY_TWILIO_AUTH_TOKEN):
    POST /2010-04-01/Accounts/{sid}/Messages.json (form: To, From | MessagingServiceSid, Body, StatusCallback?)
    GET  /2010-04-01/Accounts/{sid}/Messages/{MessageSid}.json
    receipts: POST StatusCallback (form: MessageSid, MessageStatus, ErrorCode?, ...), X-Twilio-Signature
Both APIs share one store. Receipts: `sent`, then the final one (delivered | undelivered | failed).

For people and tests:
    GET    /messages[?to=+84...][&since=epoch]   every message, with the receipts posted and their answers
    DELETE /messages                             clears the store
    GET    /control                              the behaviour in force, and how many sends fail_ratio refused
    POST   /control {"to"?, "mode"?, "delay_ms"?, "receipt"?, "receipt_delay_ms"?, "error_code"?, "out_of_order"?,
                     "fail_ratio"?, "seed"?}
           mode: ok | fail_5xx | reject_4xx | throttle_429 | timeout (hold the request delay_ms, 30 s if 0,
           then take the message, as a slow provider does after the client gave up);
           fail_ratio: in mode ok, this share of sends (0..1) is refused with a 503 all the same, drawn from
           one RNG that `seed` re-seeds (default seed 0), so a run's sequence of refusals can be repeated;
           receipt: delivered | undelivered | failed | sent (only `sent`) | none (no callbacks);
           out_of_order: the final receipt first, then a late `sent`. With "to", only for that number
           (its fields over the global ones); without, the global behaviour.
    POST   /control/reset                        global behaviour back to defaults, overrides dropped
    GET    /healthz
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import random
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import parse_qsl, urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("devstack.sms_gateway")

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
DEFAULT_ERROR = {"undelivered": "30003", "failed": None}  # 30003: unreachable handset
TIMEOUT_HOLD_MS = 30_000
MAX_MESSAGES = 100_000
CALLBACK_ATTEMPTS = 3


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GatewayCredentials:
    """What the gateway checks and signs with, and what notify needs to talk to it."""

    api_token: str = ""
    callback_secret: str = "dev-sms-callback-secret"
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "dev-twilio-auth-token"

    @classmethod
    def new(cls) -> GatewayCredentials:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(32), "AC" + secrets.token_hex(16),
                   secrets.token_hex(16))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GatewayCredentials:
        d = cls()
        return cls(env.get("SMS_GATEWAY_API_TOKEN", d.api_token),
                   env.get("SMS_GATEWAY_CALLBACK_SECRET", d.callback_secret),
                   env.get("SMS_GATEWAY_TWILIO_ACCOUNT_SID", d.account_sid),
                   env.get("SMS_GATEWAY_TWILIO_AUTH_TOKEN", d.auth_token))

    def env(self) -> dict[str, str]:
        return {"SMS_GATEWAY_API_TOKEN": self.api_token, "SMS_GATEWAY_CALLBACK_SECRET": self.callback_secret,
                "SMS_GATEWAY_TWILIO_ACCOUNT_SID": self.account_sid,
                "SMS_GATEWAY_TWILIO_AUTH_TOKEN": self.auth_token}

    def providers(self, gateway_url: str, *, timeout_s: float = 5.0) -> list[dict]:
        """SMS_PROVIDERS for notify: the generic API first, the Twilio one as its fallback, one gateway."""
        generic = {
            "name": "local-generic", "adapter": "generic", "priority": 1, "weight": 1, "timeout_s": timeout_s,
            "url": f"{gateway_url}/messages",
            "auth": {"type": "bearer", "token": self.api_token} if self.api_token else {"type": "none"},
            "request": {"to": "to", "body": "body", "reference": "reference", "callback_url": "callback_url",
                        "static": {"sender": "111"}},
            "response": {"id": "id", "status": "status", "reference": "reference", "error_code": "error_code"},
            "callback": {"secret": self.callback_secret, "header": "X-Signature"},
            "status_url": f"{gateway_url}/messages/by-reference/{{reference}}",
        }
        twilio = {
            "name": "local-twilio", "adapter": "twilio", "priority": 2, "weight": 1, "timeout_s": timeout_s,
            "account_sid": self.account_sid, "auth_token": self.auth_token, "from_number": "+15005550006",
            "base_url": gateway_url,
        }
        return [generic, twilio]


# The signatures are written out here, apart from the adapters', so a mistake on one side shows in tests.
def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def twilio_sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


# ---------------------------------------------------------------------------------------------
Mode = Literal["ok", "fail_5xx", "reject_4xx", "throttle_429", "timeout"]
ReceiptKind = Literal["delivered", "undelivered", "failed", "sent", "none"]


@dataclass
class Behaviour:
    mode: Mode = "ok"
    delay_ms: int = 0  # before answering a send
    receipt: ReceiptKind = "delivered"
    receipt_delay_ms: int = 50  # before each receipt
    error_code: str | None = None  # ErrorCode of an undelivered/failed receipt (DEFAULT_ERROR if None)
    out_of_order: bool = False
    fail_ratio: float = 0.0  # in mode ok: the share of sends refused with a 503 anyway (Gateway.rng draws)


class ControlIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str | None = None
    mode: Mode | None = None
    delay_ms: int | None = Field(None, ge=0, le=600_000)
    receipt: ReceiptKind | None = None
    receipt_delay_ms: int | None = Field(None, ge=0, le=600_000)
    error_code: str | None = None
    out_of_order: bool | None = None
    fail_ratio: float | None = Field(None, ge=0.0, le=1.0)
    seed: int | None = None  # re-seeds the RNG fail_ratio draws from (global; not per number)


@dataclass
class Gateway:
    creds: GatewayCredentials
    messages: dict[str, dict] = field(default_factory=dict)
    behaviour: Behaviour = field(default_factory=Behaviour)
    overrides: dict[str, dict] = field(default_factory=dict)
    tasks: set[asyncio.Task] = field(default_factory=set)
    http: httpx.AsyncClient | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    refused_by_ratio: int = 0  # sends fail_ratio refused since the start (or the last reset)

    def refuses_by_ratio(self, b: Behaviour) -> bool:
        """Whether fail_ratio refuses this send: one draw per send, only when a ratio is set."""
        if b.mode != "ok" or b.fail_ratio <= 0 or self.rng.random() >= b.fail_ratio:
            return False
        self.refused_by_ratio += 1
        return True

    def for_recipient(self, to: str) -> Behaviour:
        return Behaviour(**{**asdict(self.behaviour), **self.overrides.get(to, {})})

    def store(self, message: dict) -> None:
        if len(self.messages) >= MAX_MESSAGES:  # bounded, oldest dropped first
            self.messages.pop(next(iter(self.messages)))
        self.messages[message["id"]] = message

    def accept(self, message: dict, behaviour: Behaviour) -> None:
        self.store(message)
        log.info("sms %s %s -> %s", message["api"], message["id"], message["to"])
        if message["callback_url"] and behaviour.receipt != "none":
            task = asyncio.create_task(self.receipts(message, behaviour))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def receipts(self, message: dict, b: Behaviour) -> None:
        final = None if b.receipt == "sent" else b.receipt
        order = ["sent"] if final is None else ([final, "sent"] if b.out_of_order else ["sent", final])
        for status in order:
            await asyncio.sleep(b.receipt_delay_ms / 1000)
            error = (b.error_code or DEFAULT_ERROR.get(status)) if status in DEFAULT_ERROR else None
            if status != "sent" or message["status"] in ("accepted", "queued"):  # a late sent changes nothing
                message["status"], message["error_code"] = status, error
            await self.post_receipt(message, status, error)

    async def post_receipt(self, message: dict, status: str, error: str | None) -> None:
        url = message["callback_url"]
        if message["api"] == "twilio":
            form = {"MessageSid": message["id"], "SmsSid": message["id"], "MessageStatus": status,
                    "SmsStatus": status, "AccountSid": message["account_sid"], "From": message["from"],
                    "To": message["to"], "ApiVersion": "2010-04-01"}
            if error:
                form["ErrorCode"] = error
            body = urlencode(form).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       "X-Twilio-Signature": twilio_sign(self.creds.auth_token, url, form)}
        else:
            payload = {"id": message["id"], "status": status, "reference": message["reference"]}
            if error:
                payload["error_code"] = error
            body = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", "X-Signature": hmac_hex(self.creds.callback_secret, body)}
        record = {"status": status, "error_code": error, "at": _now_iso()}
        message["receipts"].append(record)
        for attempt in range(CALLBACK_ATTEMPTS):  # like real gateways: retry a receiver that is down
            try:
                resp = await self.http.post(url, content=body, headers=headers)
                record["http_status"] = resp.status_code
                if resp.status_code < 500:
                    return
            except httpx.HTTPError as exc:
                record["error"] = type(exc).__name__
            await asyncio.sleep(0.5 * (attempt + 1))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _new_message(api: str, to: str, body: str, reference: str | None, callback_url: str | None, **extra) -> dict:
    now = time.time()
    return {"id": extra.pop("id", None) or uuid.uuid4().hex, "api": api, "to": to, "body": body,
            "reference": reference, "callback_url": callback_url, "status": "accepted", "error_code": None,
            "received_at": datetime.fromtimestamp(now, UTC).isoformat(), "received_ts": now, "receipts": [],
            **extra}


async def _misbehave(gw: Gateway, b: Behaviour, refuse) -> JSONResponse | None:
    """Wait as told; the refusal for the mode (or for fail_ratio's draw), or None to go on and take the message."""
    if b.mode == "timeout":
        await asyncio.sleep((b.delay_ms or TIMEOUT_HOLD_MS) / 1000)
        return None
    if b.delay_ms:
        await asyncio.sleep(b.delay_ms / 1000)
    if b.mode == "ok":
        return refuse(503) if gw.refuses_by_ratio(b) else None
    return refuse({"fail_5xx": 503, "reject_4xx": 400, "throttle_429": 429}[b.mode])


def _twilio_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                         "status": status}, status_code=status)


def _generic_error(status: int, error: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_code": error}, status_code=status)


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None
    return user, password


def create_app(gw: Gateway) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        gw.http = httpx.AsyncClient(timeout=5.0)
        try:
            yield
        finally:
            for task in list(gw.tasks):
                task.cancel()
            await gw.http.aclose()

    app = FastAPI(title="SMS gateway (local)", docs_url=None, redoc_url=None, lifespan=lifespan)

    def generic_auth_ok(request: Request) -> bool:
        token = gw.creds.api_token
        if not token:
            return True
        given = request.headers.get("authorization", "")
        basic = _basic(request)
        return hmac.compare_digest(given, f"Bearer {token}") or (basic is not None and basic[1] == token)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    # -- generic JSON API ----------------------------------------------------------------------
    @app.post("/messages")
    async def generic_send(request: Request):
        if not generic_auth_ok(request):
            return _generic_error(401, "unauthorized")
        try:
            data = json.loads(await request.body())
        except ValueError:
            return _generic_error(400, "bad_json")
        if not isinstance(data, dict) or not isinstance(data.get("to"), str) or not isinstance(data.get("body"), str):
            return _generic_error(400, "bad_request")
        to = data["to"]
        b = gw.for_recipient(to)
        refusal = await _misbehave(gw, b, lambda s: _generic_error(s, {400: "invalid_number", 429: "throttled",
                                                                       503: "unavailable"}[s]))
        if refusal:
            return refusal
        if not E164.match(to):
            return _generic_error(400, "invalid_number")
        ref, cb = data.get("reference"), data.get("callback_url")
        message = _new_message("generic", to, data["body"], ref if isinstance(ref, str) else None,
                               cb if isinstance(cb, str) else None, sender=data.get("sender"))
        gw.accept(message, b)
        return JSONResponse(_generic_view(message), status_code=202)

    @app.get("/messages/by-reference/{reference}")
    async def generic_by_reference(reference: str, request: Request):
        if not generic_auth_ok(request):
            return _generic_error(401, "unauthorized")
        found = [m for m in gw.messages.values() if m["reference"] == reference]
        return _generic_view(found[-1]) if found else _generic_error(404, "not_found")

    @app.get("/messages/{message_id}")
    async def generic_get(message_id: str, request: Request):
        if not generic_auth_ok(request):
            return _generic_error(401, "unauthorized")
        message = gw.messages.get(message_id)
        return _generic_view(message) if message else _generic_error(404, "not_found")

    # -- Twilio --------------------------------------------------------------------------------
    def twilio_auth_error(request: Request, sid: str) -> JSONResponse | None:
        basic = _basic(request)
        if (basic is None or basic[0] != gw.creds.account_sid or sid != gw.creds.account_sid
                or not hmac.compare_digest(basic[1], gw.creds.auth_token)):
            return _twilio_error(401, 20003, "Authenticate")
        return None

    @app.post("/2010-04-01/Accounts/{sid}/Messages.json")
    async def twilio_send(sid: str, request: Request):
        if refusal := twilio_auth_error(request, sid):
            return refusal
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        b = gw.for_recipient(to)
        refusal = await _misbehave(gw, b, lambda s: {
            400: _twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number."),
            429: _twilio_error(429, 20429, "Too Many Requests"),
            503: _twilio_error(503, 20503, "Service Unavailable")}[s])
        if refusal:
            return refusal
        if not E164.match(to):
            return _twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not body:
            return _twilio_error(400, 21602, "Message body is required.")
        if not sender and not service:
            return _twilio_error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
        message = _new_message("twilio", to, body, None, form.get("StatusCallback") or None,
                               id="SM" + uuid.uuid4().hex, account_sid=sid, messaging_service_sid=service,
                               **{"from": sender or ""})
        message["status"] = "accepted" if service else "queued"
        gw.accept(message, b)
        return JSONResponse(_twilio_view(message), status_code=201)

    @app.get("/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json")
    async def twilio_get(sid: str, message_sid: str, request: Request):
        if refusal := twilio_auth_error(request, sid):
            return refusal
        message = gw.messages.get(message_sid)
        if not message or message["api"] != "twilio":
            return _twilio_error(404, 20404, f"The requested resource /Messages/{message_sid}.json was not found")
        return _twilio_view(message)

    # -- for people and tests ------------------------------------------------------------------
    @app.get("/messages")
    async def listing(to: str | None = None, since: float | None = None) -> list[dict]:
        out = list(gw.messages.values())
        if since is not None:
            out = [m for m in out if m["received_ts"] > since]
        if to:
            out = [m for m in out if m["to"] == to]
        return out

    @app.delete("/messages", status_code=204)
    async def clear() -> None:
        gw.messages.clear()

    @app.get("/control")
    async def control_get() -> dict:
        return {"global": asdict(gw.behaviour), "recipients": gw.overrides, "refused_by_ratio": gw.refused_by_ratio}

    @app.post("/control")
    async def control(change: ControlIn) -> dict:
        if change.seed is not None:
            gw.rng = random.Random(change.seed)
        fields = change.model_dump(exclude_unset=True, exclude={"to", "seed"})
        if change.to:
            gw.overrides[change.to] = {**gw.overrides.get(change.to, {}), **fields}
        else:
            gw.behaviour = Behaviour(**{**asdict(gw.behaviour), **fields})
        return await control_get()

    @app.post("/control/reset")
    async def control_reset() -> dict:
        gw.behaviour, gw.overrides = Behaviour(), {}
        gw.rng, gw.refused_by_ratio = random.Random(0), 0
        return await control_get()

    return app


def _generic_view(m: dict) -> dict:
    return {"id": m["id"], "status": m["status"], "reference": m["reference"], "error_code": m["error_code"],
            "to": m["to"]}


def _twilio_view(m: dict) -> dict:
    created = datetime.fromtimestamp(m["received_ts"], UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return {"sid": m["id"], "account_sid": m["account_sid"], "messaging_service_sid": m["messaging_service_sid"],
            "to": m["to"], "from": m["from"] or None, "body": m["body"], "status": m["status"],
            "error_code": int(m["error_code"]) if (m["error_code"] or "").isdigit() else m["error_code"],
            "error_message": None, "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
            "date_created": created, "date_updated": created, "date_sent": None, "price": None,
            "uri": f"/2010-04-01/Accounts/{m['account_sid']}/Messages/{m['id']}.json"}


async def serve(port: int = 8026, host: str = "127.0.0.1") -> None:
    import uvicorn

    gw = Gateway(GatewayCredentials.from_env())
    log.info("SMS gateway on http://%s:%d, messages at /messages, control at /control", host, port)
    # A request held in `timeout` mode must not hold up the stop.
    config = uvicorn.Config(create_app(gw), host=host, port=port, access_log=False, log_level="warning",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    await server.serve()  # returns on SIGINT/SIGTERM
    if not server.started:
        raise SystemExit(f"SMS gateway: could not serve HTTP on {host}:{port}")


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(serve(int(os.environ.get("SMS_GATEWAY_PORT", "8026")), os.environ.get("SMS_GATEWAY_BIND_HOST",
                                                                                     "127.0.0.1")))


if __name__ == "__main__":
    main()
