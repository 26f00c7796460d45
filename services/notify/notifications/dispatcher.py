"""Sends queued notifications and records their delivery status.

Claims rows with a lease (FOR UPDATE SKIP LOCKED), so several replicas share the work and a send
lost with a crashed worker is tried again when its lease ends.
"""
import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
from opentelemetry.trace import SpanKind
from sqlalchemy import text, update

from runtime.db import asyncpg_dsn
from runtime.logging import get_logger
from runtime.service import ServiceRuntime
from runtime.tracing import context_from, tracer
from schemas.events.notifications import DeliveryStatus, NotificationStatusChanged
from services.notify.delivery.outcome import SendOutcome, Verdict
from services.notify.delivery.smtp import SmtpProvider
from services.notify.delivery.states import TERMINAL
from services.notify.models import SCHEMA, notifications
from services.notify.notifications.handlers import DISPATCH_CHANNEL
from services.notify.notifications.templates import email_message
from services.notify.settings import NotifySettings

log = get_logger(__name__)

_CLAIM = text(f"""
UPDATE {SCHEMA}.notifications n
   SET status = 'sending', attempts = n.attempts + 1, updated_at = now(),
       next_attempt_at = now() + make_interval(secs => :lease)
 WHERE n.id IN (SELECT id FROM {SCHEMA}.notifications
                 WHERE status IN ('created', 'sending') AND next_attempt_at <= now()
                 ORDER BY next_attempt_at LIMIT :n FOR UPDATE SKIP LOCKED)
RETURNING n.id, n.referral_id, n.case_id, n.channel, n.recipient, n.subject, n.body, n.attempts, n.trace
""")


class Dispatcher:
    def __init__(self, runtime: ServiceRuntime, settings: NotifySettings):
        self._runtime = runtime
        self._s = settings
        self._provider = SmtpProvider(settings)
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                conn = await asyncpg.connect(asyncpg_dsn(self._s.database_url))
                try:
                    await conn.add_listener(DISPATCH_CHANNEL, lambda *_: self._wake.set())
                    await self._loop(stop)
                finally:
                    await conn.close()
            except Exception as exc:  # noqa: BLE001 - database trouble: back off and reconnect
                log.warning("dispatcher_error", error=type(exc).__name__)
                await asyncio.sleep(1.0)

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            claimed = await self._claim()
            if claimed:
                # In-flight sends finish even when stopping: their outcome is recorded before exit.
                await asyncio.gather(*(self._deliver(row) for row in claimed))
            if len(claimed) < self._s.notify_batch_size:
                try:
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except TimeoutError:
                    pass

    async def _claim(self) -> list:
        async with self._runtime.uow() as uow:
            rows = (await uow.session.execute(
                _CLAIM, {"lease": self._s.notify_claim_lease_s, "n": self._s.notify_batch_size}
            )).mappings().all()
            await uow.commit()
            return list(rows)

    async def _deliver(self, row) -> None:
        carrier = row["trace"] or {}
        with tracer().start_as_current_span(
            "send email", context=context_from(carrier), kind=SpanKind.CLIENT,
            attributes={"notification.id": str(row["id"]), "notification.attempt": row["attempts"]},
        ):
            message = email_message(
                self._s.notify_email_from, row["recipient"], row["subject"], row["body"],
                {"X-Hotline-Referral-Id": str(row["referral_id"]), "X-Hotline-Notification-Id": str(row["id"])},
            )
            outcome = await self._provider.send(message)
            await self._record(row, outcome)

    async def _record(self, row, outcome: SendOutcome) -> None:
        now = datetime.now(UTC)
        values: dict = {"provider_code": outcome.code, "updated_at": now}
        if outcome.verdict is Verdict.delivered:
            values |= {"status": DeliveryStatus.delivered, "sent_at": now, "provider_ref": outcome.provider_ref}
        elif outcome.verdict is Verdict.permanent:
            values["status"] = DeliveryStatus.permanent_failure
        elif row["attempts"] >= self._s.notify_max_attempts:
            values["status"] = DeliveryStatus(outcome.exhausts_to)
        else:
            values["next_attempt_at"] = now + timedelta(seconds=self._s.notify_retry_base_s * 2 ** (row["attempts"] - 1))
        async with self._runtime.uow() as uow:
            changed = await uow.session.scalar(
                update(notifications)
                .where(notifications.c.id == row["id"], notifications.c.status == DeliveryStatus.sending)
                .values(**values)
                .returning(notifications.c.id)
            )
            status = values.get("status")
            if changed is not None and status in TERMINAL:
                uow.emit(
                    NotificationStatusChanged(
                        notification_id=row["id"], referral_id=row["referral_id"], case_id=row["case_id"],
                        channel=row["channel"], status=status, occurred_at=now, attempts=row["attempts"],
                        recipient=row["recipient"],
                    ),
                    key=str(row["case_id"]),
                )
            await uow.commit()
        log.info("notification_attempt", notification_id=str(row["id"]), attempt=row["attempts"],
                 verdict=outcome.verdict, code=outcome.code, status=str(values.get("status", "sending")))
