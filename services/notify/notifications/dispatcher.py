"""Sends what is due, emergencies first, and records every answer.

No double sends: a claim marks a message "sending" with a lease and commits before any provider is
called; the provider's answer (and its message id) is recorded after. A lease that ran out means the
worker died mid-send: reconcile.py asks the provider what became of it instead of sending it again.
Several replicas share the work through FOR UPDATE SKIP LOCKED.
"""
import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram
from sqlalchemy import text

from runtime.db import asyncpg_dsn, database_unreachable
from runtime.logging import get_logger
from runtime.service import ServiceRuntime
from runtime.tracing import context_from, tracer
from schemas.events.notifications import DeliveryStatus as D
from services.notify.delivery.outcome import NEVER_RECEIVED, TIMEOUT, SendOutcome, Verdict
from services.notify.delivery.providers import OutgoingMessage
from services.notify.delivery.registry import Senders, Wait
from services.notify.delivery.webhook import is_gone
from services.notify.models import SCHEMA
from services.notify.notifications.handlers import DISPATCH_CHANNEL
from services.notify.notifications.status import emit_status, move, record_status
from services.notify.settings import NotifySettings
from services.notify.webhooks.service import deactivate

log = get_logger(__name__)
ATTEMPTS = Counter("notify_send_attempts_total", "Provider calls by channel, provider and verdict",
                   ["channel", "provider", "verdict"])
SEND_SECONDS = Histogram("notify_send_seconds", "Provider call time", ["channel", "provider"])

# Due messages, emergencies first; a claimed one is leased to this worker until its answer is recorded.
_CLAIM = text(f"""
WITH due AS (SELECT id, status AS was FROM {SCHEMA}.notifications
              WHERE status IN ('created', 'sending') AND leased_until IS NULL AND next_attempt_at <= now()
              ORDER BY priority, next_attempt_at LIMIT :n FOR UPDATE SKIP LOCKED)
UPDATE {SCHEMA}.notifications n
   SET status = 'sending', attempts = n.attempts + 1, updated_at = now(),
       leased_until = now() + make_interval(secs => :lease)
  FROM due WHERE n.id = due.id
RETURNING n.id, n.referral_id, n.case_id, n.channel, n.recipient, n.subject, n.body, n.attempts, n.trace,
          n.priority, n.retry_until, n.webhook_endpoint_id, n.created_at, n.provider, n.provider_code, n.provider_ref,
          n.next_attempt_at, due.was
""")
# Before the calls, in one transaction for the whole claimed batch: a message a rate limit holds back goes
# back unattempted, and each other one records which provider takes it, so a crash leaves messages reconcile
# can ask about.
_DEFER = text(f"""
UPDATE {SCHEMA}.notifications n SET attempts = n.attempts - 1, leased_until = NULL,
       next_attempt_at = now() + make_interval(secs => d.wait)
  FROM unnest(CAST(:ids AS uuid[]), CAST(:waits AS float8[])) AS d(id, wait)
 WHERE n.id = d.id AND n.leased_until IS NOT NULL
""")
_PROVIDERS = text(f"""
UPDATE {SCHEMA}.notifications n SET provider = p.provider
  FROM unnest(CAST(:ids AS uuid[]), CAST(:providers AS text[])) AS p(id, provider)
 WHERE n.id = p.id
""")


class Dispatcher:
    def __init__(self, runtime: ServiceRuntime, settings: NotifySettings, senders: Senders,
                 rng: random.Random | None = None):
        self._runtime = runtime
        self._s = settings
        self._senders = senders
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                conn = await asyncpg.connect(asyncpg_dsn(self._s.session_database_url))
                try:
                    await conn.add_listener(DISPATCH_CHANNEL, lambda *_: self._wake.set())
                    await self._loop(stop)
                finally:
                    await conn.close()
            except Exception as exc:  # noqa: BLE001 - database trouble: back off and reconnect
                log.warning("dispatcher_error", error=type(exc).__name__)
                await asyncio.sleep(1.0)
        await self._senders.aclose()

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            claimed = await self.claim()
            if claimed:
                # In-flight sends finish even when stopping: their outcome is recorded before exit.
                await self.deliver(claimed)
            if len(claimed) < self._s.notify_batch_size:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._s.notify_poll_s)
                except TimeoutError:
                    pass

    async def claim(self) -> list:
        async with self._runtime.uow() as uow:
            rows = (await uow.session.execute(
                _CLAIM, {"lease": self._s.notify_claim_lease_s, "n": self._s.notify_batch_size}
            )).mappings().all()
            now = datetime.now(UTC)
            for row in rows:
                if row["was"] == D.created:  # created → sending; a retry or a deferred one says nothing new
                    emit_status(uow, row, D.sending, now)
            await uow.commit()
            # RETURNING gives the table's order: the batch goes out emergencies first, as it was chosen.
            return sorted(rows, key=lambda r: (r["priority"], r["next_attempt_at"]))

    async def deliver(self, claimed: list) -> None:
        """Send a claimed batch: which provider takes each message (or the rate limit that holds it back) is
        written for the whole batch in one transaction, then the calls go out together and each answer is
        recorded as it comes. A retry after a timeout first asks its provider whether it had the message
        after all; that lookup may be slow, so it goes on its own and holds up nothing else."""
        after_timeout = [row for row in claimed if _timed_out(row)]
        await asyncio.gather(self._send_all([row for row in claimed if not _timed_out(row)]),
                             *(self._resend_after_timeout(row) for row in after_timeout))

    async def _resend_after_timeout(self, row) -> None:
        if not await self._taken_after_timeout(row):
            await self._send_all([row])

    async def _send_all(self, rows: list) -> None:
        if not rows:
            return
        picked, held = [], []
        for row in rows:
            choice = self._senders.pick(row["channel"], row["recipient"], time.monotonic(), row["priority"])
            if isinstance(choice, Wait):
                held.append((row, choice.seconds))
            else:
                picked.append((row, choice))
        async with self._runtime.uow() as uow:
            if held:
                await uow.session.execute(_DEFER, {"ids": [row["id"] for row, _ in held],
                                                   "waits": [seconds for _, seconds in held]})
            if picked:
                await uow.session.execute(_PROVIDERS, {"ids": [row["id"] for row, _ in picked],
                                                       "providers": [provider.name for _, provider in picked]})
            await uow.commit()
        await asyncio.gather(*(self._send(row, provider) for row, provider in picked))

    async def _send(self, row, provider) -> None:
        out = OutgoingMessage(
            notification_id=str(row["id"]), recipient=row["recipient"], body=row["body"], subject=row["subject"],
            headers={"X-Hotline-Referral-Id": str(row["referral_id"]), "X-Hotline-Notification-Id": str(row["id"])},
            webhook_endpoint_id=row["webhook_endpoint_id"],
        )
        with tracer().start_as_current_span(
            f"send {row['channel']}", context=context_from(row["trace"] or {}), kind=SpanKind.CLIENT,
            attributes={"notification.id": str(row["id"]), "notification.attempt": row["attempts"],
                        "notification.provider": provider.name, "notification.priority": row["priority"]},
        ):
            started = time.perf_counter()
            try:
                outcome = await provider.send(out)
            except Exception as exc:  # noqa: BLE001 - a provider bug must not kill the worker; retried
                log.exception("provider_send_crashed", provider=provider.name)
                outcome = SendOutcome(Verdict.retry, f"crash:{type(exc).__name__}")
            SEND_SECONDS.labels(row["channel"], provider.name).observe(time.perf_counter() - started)
            ATTEMPTS.labels(row["channel"], provider.name, outcome.verdict).inc()
            self._senders.record(provider, outcome, time.monotonic())
            # Inside the span: the status event, and what referral does on it, stay in the report's trace.
            await self._keep_answer(row, provider.name, outcome)

    async def _keep_answer(self, row, provider: str, outcome: SendOutcome) -> None:
        """Record the provider's answer; while the database cannot be reached, try again, for up to half the
        send's lease. An answer lost here is a message reconcile can only guess about (an email it must
        call unconfirmed, though it went), so a database restart must not lose it."""
        deadline = time.monotonic() + self._s.notify_claim_lease_s / 2
        delay = 0.2
        while True:
            try:
                await self._record(row, provider, outcome)
                return
            except Exception as exc:
                if not database_unreachable(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("send_answer_waits_for_database", notification_id=str(row["id"]),
                            error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _record(self, row, provider: str, outcome: SendOutcome) -> None:
        now = datetime.now(UTC)
        values: dict = {"provider_code": outcome.code, "provider": provider, "leased_until": None}
        if outcome.provider_ref:
            values["provider_ref"] = outcome.provider_ref[:200]
        status: D | None
        if outcome.verdict is Verdict.delivered:
            status = D.delivered
            values |= {"sent_at": now, "delivered_at": now}
        elif outcome.verdict is Verdict.accepted:
            status = D.sent
            values["sent_at"] = now
        elif outcome.verdict is Verdict.permanent:
            status = D.permanent_failure
        else:
            wait = self.backoff(row["attempts"])
            if row["attempts"] >= self._s.notify_max_attempts or (
                    row["retry_until"] is not None and now + timedelta(seconds=wait) > row["retry_until"]):
                status = D(outcome.exhausts_to)
            else:
                status = None  # stays "sending", unleased, until its next attempt
                values["next_attempt_at"] = now + timedelta(seconds=wait)
        async with self._runtime.uow() as uow:
            await move(uow, row["id"], status, values, answer=True)
            if row["channel"] == "webhook" and row["webhook_endpoint_id"] and is_gone(outcome):
                # 410 Gone: the endpoint is deactivated with the outcome, so nothing more is queued for it.
                await deactivate(uow.session, row["webhook_endpoint_id"])
            await uow.commit()
        log.info("notification_attempt", notification_id=str(row["id"]), attempt=row["attempts"],
                 provider=provider, verdict=outcome.verdict, code=outcome.code, status=str(status or "sending"))

    async def _taken_after_timeout(self, row) -> bool:
        """A send that timed out may have been taken all the same (a slow gateway answers after we gave up):
        the provider is asked, by our reference, before the message is sent again. True when it had it."""
        if not _timed_out(row):
            return False
        provider = self._senders.by_name(row["provider"])
        receipt = await provider.lookup(row["provider_ref"], str(row["id"])) if provider else None
        if receipt is None or receipt is NEVER_RECEIVED:
            return False  # never got it, or cannot tell: sent again (a webhook receiver deduplicates)
        now = datetime.now(UTC)
        values = {"provider_code": receipt.code, "provider_ref": receipt.provider_ref, "leased_until": None,
                  "sent_at": now} | ({"delivered_at": now} if receipt.status is D.delivered else {})
        await record_status(self._runtime, row["id"], receipt.status, values, answer=True)
        log.info("timed_out_send_was_taken", notification_id=str(row["id"]), provider=row["provider"],
                 status=receipt.status)
        return True

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with jitter (half to all of the step): messages that failed together spread out."""
        ceiling = min(self._s.notify_retry_max_s, self._s.notify_retry_base_s * 2 ** max(attempts - 1, 0))
        return self._rng.uniform(ceiling / 2, ceiling)


def _timed_out(row) -> bool:
    """The message's last send timed out: its provider may have taken it all the same."""
    return row["provider_code"] == TIMEOUT and bool(row["provider"])
