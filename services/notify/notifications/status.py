"""One way to move a notification's status: forward only (a terminal state never changes, a late "sent"
after "delivered" changes nothing), and every change an event, in the same transaction."""
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from runtime.service import ServiceRuntime
from runtime.uow import UnitOfWork
from schemas.events.notifications import DeliveryStatus as D
from schemas.events.notifications import NotificationStatusChanged
from services.notify.delivery.states import moves_forward
from services.notify.models import notifications

n = notifications.c

_EVENT_COLUMNS = (n.id, n.referral_id, n.case_id, n.channel, n.recipient, n.attempts, n.status, n.provider, n.kind)


def emit_status(uow: UnitOfWork, row: Mapping[str, Any], status: D, at: datetime) -> None:
    uow.emit(NotificationStatusChanged(
        notification_id=row["id"], referral_id=row["referral_id"], case_id=row["case_id"], channel=row["channel"],
        status=status, occurred_at=at, attempts=row["attempts"], recipient=row["recipient"],
        provider=row.get("provider"), kind=row.get("kind"),
    ), key=str(row["case_id"]))


async def move(uow: UnitOfWork, notification_id: uuid.UUID, status: D | None, values: Mapping[str, Any], *,
               answer: bool = False) -> D | None:
    """Move a message to `status` when that is news, uncommitted, with its event. `values` are written with
    it; with `answer` (the dispatcher recording its own provider call) they are written even when the status
    is old news, e.g. the provider's id after its receipt already came. Returns the status before, or None
    when nothing was written."""
    row = (await uow.session.execute(select(*_EVENT_COLUMNS).where(n.id == notification_id).with_for_update())
           ).mappings().first()
    if row is None:
        return None
    before = D(row["status"])
    news = status is not None and moves_forward(before, status)
    if not news and not answer:
        return None
    now = datetime.now(UTC)
    await uow.session.execute(update(notifications).where(n.id == notification_id).values(
        **values, updated_at=now, **({"status": status} if news else {})))
    if news:
        emit_status(uow, {**row, **values}, status, now)
    return before


async def record_status(runtime: ServiceRuntime, notification_id: uuid.UUID, status: D | None,
                        values: Mapping[str, Any], *, answer: bool = False) -> D | None:
    async with runtime.uow() as uow:
        before = await move(uow, notification_id, status, values, answer=answer)
        await uow.commit()
        return before
