"""After a crash: messages whose send lease ran out, and sent messages whose receipt never came.

A lease runs out when a worker died between marking a message "sending" and recording the provider's
answer. It is never sent blindly again:
- the provider was not yet chosen: nobody was called, so it goes back in the queue;
- the provider can be asked (an SMS gateway's status lookup): its answer settles the message; a
  provider that never heard of it lets it go back in the queue;
- a webhook: sent again, with the same `webhook-id`, which receivers deduplicate (Standard Webhooks);
- email (SMTP cannot be asked): sent again, with the same Message-ID (delivery/smtp.py), which mail
  servers and clients take as the same message. A lost alert is worse than a second copy of one.
The window that remains: an SMS sent by a provider without status lookup, in the seconds between its
acceptance and our record of it, is failed (`unconfirmed-after-crash`) and may reach its recipient
anyway: an SMS has no identity a phone could deduplicate by, so it is not sent twice.
"""
import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update

from runtime.db import log_failed_tick
from runtime.logging import get_logger
from runtime.service import ServiceRuntime
from schemas.events.notifications import DeliveryStatus as D
from services.notify.delivery.outcome import NEVER_RECEIVED
from services.notify.delivery.registry import Senders
from services.notify.models import notifications as t
from services.notify.notifications.status import move
from services.notify.settings import NotifySettings

log = get_logger(__name__)
UNCONFIRMED = "unconfirmed-after-crash"
n = t.c


class Reconciler:
    def __init__(self, runtime: ServiceRuntime, settings: NotifySettings, senders: Senders):
        self._runtime, self._s, self._senders = runtime, settings, senders

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.once(datetime.now(UTC))
            except Exception as exc:  # noqa: BLE001 - retried at the next tick; its transaction rolled back
                log_failed_tick(log, "reconcile_failed", exc)
            try:
                await asyncio.wait_for(stop.wait(), self._s.notify_reconcile_s)
            except TimeoutError:
                pass

    async def once(self, now: datetime) -> int:
        """Settle what is due; the number of messages looked at."""
        async with self._runtime.uow() as uow:
            rows = (await uow.session.execute(
                select(n.id, n.channel, n.provider, n.provider_ref, n.status, n.leased_until)
                .where(or_(
                    n.leased_until < now,
                    (n.status == D.sent) & (n.updated_at < now - timedelta(seconds=self._s.notify_receipt_wait_s)),
                ))
                .order_by(n.priority, n.updated_at).limit(100).with_for_update(skip_locked=True)
            )).mappings().all()
            for row in rows:
                await self._settle(uow, row, now)
            await uow.commit()
        return len(rows)

    async def _settle(self, uow, row, now: datetime) -> None:
        stale_lease = row["leased_until"] is not None and row["leased_until"] < now
        provider = self._senders.by_name(row["provider"]) if row["provider"] else None
        if stale_lease and provider is None:
            await self._requeue(uow, row, now, "crashed before choosing a provider")
            return
        receipt = await provider.lookup(row["provider_ref"], str(row["id"])) if provider else None
        if receipt is NEVER_RECEIVED and stale_lease:
            await self._requeue(uow, row, now, "the provider never received it")
        elif receipt is not None and receipt is not NEVER_RECEIVED:
            values = {"provider_code": receipt.code, "leased_until": None, "provider_ref": receipt.provider_ref}
            if receipt.status is D.delivered:  # as a delivery receipt records it (receipts.py); kept if known
                values["delivered_at"] = func.coalesce(n.delivered_at, now)
            await move(uow, row["id"], receipt.status, values, answer=True)
            log.info("reconciled_by_lookup", notification_id=str(row["id"]), status=receipt.status)
        elif stale_lease and row["channel"] == "webhook":
            await self._requeue(uow, row, now, "webhook receivers deduplicate by webhook-id")
        elif stale_lease and row["channel"] == "email":
            await self._requeue(uow, row, now, "sent again under the same Message-ID")
        elif stale_lease:
            await move(uow, row["id"], D.technical_failure, {"provider_code": UNCONFIRMED, "leased_until": None},
                       answer=True)
            log.warning("reconciled_unconfirmed", notification_id=str(row["id"]), channel=row["channel"])
        else:  # sent, no receipt yet, the provider cannot say more: look again later
            await uow.session.execute(update(t).where(n.id == row["id"]).values(updated_at=now))

    async def _requeue(self, uow, row, now: datetime, why: str) -> None:
        await uow.session.execute(update(t).where(n.id == row["id"]).values(
            leased_until=None, next_attempt_at=now, updated_at=now))
        log.warning("reconciled_requeued", notification_id=str(row["id"]), reason=why)
