"""What the notify pipeline tests share.

notify is built in-process by create_app(settings) against the test module's own database; its workers are
never started (no consumer joins the stack's broker group, no dispatcher runs on its own): a test feeds
referral events to the handler and calls the dispatcher's claim()/deliver() and the reconciler itself. Its
HTTP routes serve on a real port in the test's event loop, so the SMS gateway's receipts reach
/callbacks/sms/<provider> as they would in production. Email goes to the stack's SMTP sink, SMS to a local
gateway process (devstack/sms_gateway.py, the only fake), webhooks to a receiver on loopback.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import uvicorn
from sqlalchemy import select, text, update
from standardwebhooks import Webhook, WebhookVerificationError

from devstack.procs import Supervisor, free_port
from devstack.sms_gateway import GatewayCredentials
from runtime.consumer import Event
from schemas import event_spec_for_model
from schemas.events.referrals import (
    AgencyContact, ReferralContactFallback, ReferralCreated, ReferralEscalated, ReferralReminder,
    ReferralStatusChanged,
)
from services.notify.app import create_app
from services.notify.delivery.failover import HealthPolicy
from services.notify.delivery.registry import Senders
from services.notify.models import SCHEMA, notifications, outbox
from services.notify.notifications.dispatcher import Dispatcher
from services.notify.notifications.handlers import referral_handlers
from services.notify.notifications.reconcile import Reconciler
from services.notify.settings import NotifySettings
from services.notify.templates.repository import TemplateBook
from services.notify.templates.seed import ensure_defaults
from services.notify.webhooks import service as webhooks
from services.notify.webhooks.schemas import EndpointIn
from tests.support import eventually

STATUS_EVENT = "vn.hotline111.notification.status-changed.v1"
n = notifications.c


# ---- referral events ---------------------------------------------------------------------------------------

def number() -> str:
    """A valid Vietnamese mobile number (090: MobiFone), new each time, so each test has its own recipients."""
    return "+8490" + "".join(random.choice("0123456789") for _ in range(7))


def mailbox(tag: str = "duty") -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@police.example"


def sms(address: str) -> AgencyContact:
    return AgencyContact(channel="sms", address=address)


def email(address: str) -> AgencyContact:
    return AgencyContact(channel="email", address=address)


def created(*contacts: AgencyContact, urgency: str = "normal", language: str = "vi", unit: uuid.UUID | None = None,
            province: str = "01", commune: str | None = None, cause: str = "matched") -> ReferralCreated:
    return ReferralCreated(
        referral_id=uuid.uuid4(), case_id=uuid.uuid4(), case_number=f"111-2026-{uuid.uuid4().int % 10**6:06d}",
        agency_unit_id=unit or uuid.uuid4(), agency_unit_name="Công an tỉnh Quảng Trị", agency_kind="police_province",
        province_code=province, commune_code=commune, urgency=urgency,
        acknowledge_by=datetime.now(UTC) + timedelta(hours=1), match_reason="test", contacts=list(contacts),
        language=language, cause=cause, exploitation=["forced_labour"],
        ack_url="https://hotline111.example/ack/AVoMK45vHUw6m34tT2qMDhJpreHAAQ_tdiJjzQXRkzKY5NovEA")


def _same_referral(r: ReferralCreated) -> dict:
    return {"referral_id": r.referral_id, "case_id": r.case_id, "case_number": r.case_number,
            "agency_unit_id": r.agency_unit_id}


def reminder(r: ReferralCreated, *contacts: AgencyContact) -> ReferralReminder:
    return ReferralReminder(**_same_referral(r), agency_unit_name=r.agency_unit_name, urgency=r.urgency,
                            acknowledge_by=r.acknowledge_by, escalate_at=r.acknowledge_by + timedelta(minutes=15),
                            contacts=list(contacts), ack_url=r.ack_url, language=r.language)


def escalated(r: ReferralCreated) -> ReferralEscalated:
    return ReferralEscalated(**_same_referral(r), escalated_referral_id=uuid.uuid4(), to_level="national",
                             escalated_at=datetime.now(UTC))


def closed(r: ReferralCreated) -> ReferralStatusChanged:
    return ReferralStatusChanged(**_same_referral(r), from_status="accepted", to_status="closed", via="agency_api",
                                 changed_at=datetime.now(UTC))


def acknowledged(r: ReferralCreated) -> ReferralStatusChanged:
    return ReferralStatusChanged(**_same_referral(r), from_status="notified", to_status="acknowledged",
                                 via="agency_api", changed_at=datetime.now(UTC))


def fallback(r: ReferralCreated, to: AgencyContact, failed_channel: str = "email",
             failed_status: str = "permanent-failure") -> ReferralContactFallback:
    return ReferralContactFallback(**_same_referral(r), contact=to, failed_channel=failed_channel,
                                   failed_status=failed_status, occurred_at=datetime.now(UTC))


# ---- the local SMS gateway, as its own process ----------------------------------------------------------------

class SmsGateway:
    """One devstack.sms_gateway process: its URL, the credentials notify talks to it with, and its test API."""

    def __init__(self, supervisor: Supervisor, name: str = "sms", port: int | None = None):
        self.supervisor, self.name = supervisor, name
        self.port = port or free_port()
        self.creds = GatewayCredentials.new()
        self.url = f"http://127.0.0.1:{self.port}"

    async def start(self) -> SmsGateway:
        self.supervisor.start(self.name, [sys.executable, "-m", "devstack.sms_gateway"],
                              {**os.environ, **self.creds.env(), "SMS_GATEWAY_PORT": str(self.port)})
        await asyncio.to_thread(self.supervisor.wait_ready, self.name, f"{self.url}/healthz", 30)
        return self

    def stop(self) -> None:
        self.supervisor.stop(self.name)

    def providers(self, *, timeout_s: float = 5.0, **names: str) -> list[dict]:
        """SMS_PROVIDERS for it: generic (priority 1) and Twilio (priority 2); `generic="x"` renames one."""
        generic, twilio = self.creds.providers(self.url, timeout_s=timeout_s)
        generic["name"], twilio["name"] = names.get("generic", generic["name"]), names.get("twilio", twilio["name"])
        return [generic, twilio]

    async def messages(self, to: str | None = None) -> list[dict]:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(f"{self.url}/messages", params={"to": to} if to else None)
        r.raise_for_status()
        return r.json()

    async def control(self, **change) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            (await http.post(f"{self.url}/control", json=change)).raise_for_status()


# ---- notify's routes on a real port ---------------------------------------------------------------------------

class Routes:
    """An HTTP server in the test's event loop that serves whichever notify app the running test built."""

    def __init__(self):
        self.app = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self._asgi, host="127.0.0.1", port=self.port, lifespan="off", interface="asgi3",
                                log_config=None, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task | None = None

    async def _asgi(self, scope, receive, send):
        app = self.app
        if app is None:  # between tests: a gateway that retries a receipt gets a 503, as from a restarting notify
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    async def start(self) -> Routes:
        self._task = asyncio.create_task(self.server.serve())
        await eventually(lambda: _value(self.server.started), 10, 0.01)
        return self

    async def stop(self) -> None:
        self.server.should_exit = True
        await self._task


async def _value(v):
    return v


# ---- notify, built in-process --------------------------------------------------------------------------------

# Retries due at once (a few ms) unless a test says otherwise: tests wait for states, never for the clock.
FAST = {"notify_retry_base_s": 0.01, "notify_retry_max_s": 0.02, "notify_max_attempts": 3, "notify_poll_s": 0.05}


class Notify:
    """notify as create_app built it: the consumer's handler, a dispatcher and a reconciler over its providers,
    a client of its routes, and reads of its database."""

    def __init__(self, app, settings: NotifySettings, stack):
        self.app, self.settings, self.stack = app, settings, stack
        self.runtime = app.state.runtime
        self.senders = app.state.senders
        self.handler = referral_handlers(self.senders, TemplateBook(),
                                         allow_fictitious=settings.notify_fictitious_numbers)
        self.dispatcher = Dispatcher(self.runtime, settings, self.senders, rng=random.Random(1))
        self.reconciler = Reconciler(self.runtime, settings, self.senders)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notify")

    def headers(self, *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.token(*roles, sub='notify-tests')}"}

    # -- events in ---------------------------------------------------------------------------------------
    async def handle(self, payload, event_id: uuid.UUID | None = None) -> uuid.UUID:
        """The consumer's handler on one event, in its own committed transaction; the event's id."""
        event = Event(id=event_id or uuid.uuid4(), type=event_spec_for_model(type(payload)).type, source="/tests",
                      subject=None, time=datetime.now(UTC), key=str(payload.case_id), payload=payload, trace={})
        async with self.runtime.uow() as uow:
            await self.handler(uow, event)
            await uow.commit()
        return event.id

    # -- sending -------------------------------------------------------------------------------------------
    async def send_due(self) -> list:
        """One round of the dispatcher: claim what is due, deliver it; the claimed rows."""
        claimed = await self.dispatcher.claim()
        await self.dispatcher.deliver(claimed)
        return claimed

    async def send_until(self, done: Callable[[], Awaitable], timeout: float = 20.0):
        """Dispatcher rounds until `done()` is truthy (its value)."""
        async def round_then_check():
            await self.send_due()
            return await done()
        return await eventually(round_then_check, timeout, 0.02)

    async def settle(self, *ids: uuid.UUID, timeout: float = 20.0) -> list[dict]:
        """Dispatcher rounds until none of `ids` is left to send (created or sending); their rows."""
        async def settled():
            rows = [await self.row(i) for i in ids]
            return rows if all(r["status"] not in ("created", "sending") for r in rows) else None
        return await self.send_until(settled, timeout)

    # -- the database --------------------------------------------------------------------------------------
    async def rows(self, referral_id: uuid.UUID) -> list[dict]:
        async with self.runtime.engine.connect() as conn:
            rows = await conn.execute(select(notifications).where(n.referral_id == referral_id)
                                      .order_by(n.created_at, n.channel, n.recipient))
            return [dict(r) for r in rows.mappings()]

    async def row(self, notification_id: uuid.UUID) -> dict:
        async with self.runtime.engine.connect() as conn:
            return dict((await conn.execute(select(notifications).where(n.id == notification_id))).mappings().one())

    async def by_channel(self, referral_id: uuid.UUID) -> dict[str, dict]:
        rows = await self.rows(referral_id)
        by = {r["channel"]: r for r in rows}
        assert len(by) == len(rows), "one message per channel expected"
        return by

    async def set(self, notification_id: uuid.UUID, **values) -> None:
        async with self.runtime.engine.begin() as conn:
            await conn.execute(update(notifications).where(n.id == notification_id).values(**values))

    async def due_now(self, notification_id: uuid.UUID) -> None:
        """Bring a scheduled retry forward: the test skips the wait, the recorded schedule is read before."""
        async with self.runtime.engine.begin() as conn:
            await conn.execute(text(f"UPDATE {SCHEMA}.notifications SET next_attempt_at = now() WHERE id = :id"),
                               {"id": notification_id})

    async def reported(self, notification_id: uuid.UUID) -> list[str]:
        """The statuses notify emitted for one message, in outbox order."""
        async with self.runtime.engine.connect() as conn:
            rows = await conn.execute(select(outbox.c.payload).where(
                outbox.c.type == STATUS_EVENT, outbox.c.payload["notification_id"].astext == str(notification_id))
                .order_by(outbox.c.seq))
            return [p["status"] for p in rows.scalars()]

    async def webhook_endpoint(self, unit: uuid.UUID, url: str):
        async with self.runtime.uow() as uow:
            return await webhooks.create(uow, EndpointIn(agency_unit_id=unit, url=url))

    async def close(self) -> None:
        await self.http.aclose()
        await self.senders.aclose()
        await self.runtime.engine.dispose()


async def park_pending(engine) -> None:
    """Earlier tests' unsent messages out of the way: the claim takes whatever is due in the database."""
    async with engine.begin() as conn:
        await conn.execute(text(f"UPDATE {SCHEMA}.notifications SET next_attempt_at = 'infinity' "
                                "WHERE status IN ('created', 'sending')"))


@asynccontextmanager
async def notify(db, stack, routes: Routes, *, health: HealthPolicy | None = None, **overrides):
    """notify as create_app builds it, over the module's own database, with `overrides` of its settings;
    its routes served on `routes` while the block runs. `health`: an SMS failover policy of the test's
    (a cool-down short enough to see a provider recover)."""
    _, url = db
    settings = NotifySettings(**{"database_url": url, "kafka_bootstrap_servers": stack.bootstrap, "db_pool_size": 4,
                                 "smtp_port": stack.ports.smtp, "sms_callback_base_url": routes.url,
                                 **FAST, **overrides})
    with pytest.MonkeyPatch.context() as env:  # create_app reads its auth settings from the environment
        env.setenv("AUTH_MODE", "hs256")
        env.setenv("AUTH_HS256_SECRET", stack.auth_secret)
        app = create_app(settings)
    if health is not None:
        default, app.state.senders = app.state.senders, Senders.from_settings(
            settings, webhooks.secret_source(app.state.runtime.sessions), health=health)
        await default.aclose()
    async with app.state.runtime.sessions() as session:  # what the template-defaults worker does at start
        await ensure_defaults(session)
        await session.commit()
    built = Notify(app, settings, stack)
    routes.app = app
    try:
        yield built
    finally:
        routes.app = None
        await built.close()


@contextmanager
def logged(module: str):
    """The events `module` logs while the block runs (structlog through stdlib logging, as create_app sets it
    up); a handler of the module's own, so nothing that resets the root logger's handlers drops it."""
    events: list[dict] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if isinstance(record.msg, dict):
                events.append(record.msg)

    handler, logger = Catch(), logging.getLogger(module)
    logger.addHandler(handler)
    try:
        yield events
    finally:
        logger.removeHandler(handler)


# ---- what arrived --------------------------------------------------------------------------------------------

async def emails(stack, to: str) -> list[dict]:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(stack.smtp_messages_url, params={"to": to})
    r.raise_for_status()
    return r.json()


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    def verified_by(self, secret: str) -> bool:
        try:
            Webhook(secret).verify(self.body, self.headers)
            return True
        except WebhookVerificationError:
            return False

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """An agency's webhook receiver on loopback: answers `status` (per path), records every request."""

    def __init__(self):
        self.status: dict[str, int] = {}
        self.received: list[Delivery] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.received.append(Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status.get(self.path, 204))
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Delivery]:
        return [d for d in self.received if d.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def unique_path() -> str:
    return f"/hooks/{uuid.uuid4().hex[:10]}"
