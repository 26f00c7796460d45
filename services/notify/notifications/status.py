"""One way to move a notification's status: forward only (a terminal state never changes, a late "sent"
after "delivered" changes nothing), and every change an event, in the same transaction."""
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, SessionTransaction

from runtime.service import ServiceRuntime
from runtime.uow import UnitOfWork
from schemas.events.notifications import DeliveryStatus as D
from schemas.events.notifications import NotificationChannel, NotificationStatusChanged
from services.notify.delivery.states import TERMINAL, moves_forward
from services.notify.models import notifications

n = notifications.c

# Terminal outcomes, the denominator of a true failure rate (provider attempts count retries). Every series
# exists from the start at 0: a rate over a counter's first appearance sees no increase.
FINISHED = Counter("notify_notifications_finished_total",
                   "Notifications that reached a terminal status (delivered or a failure), by channel and status",
                   ["channel", "status"])
for _channel in NotificationChannel:
    for _status in TERMINAL:
        FINISHED.labels(_channel.value, _status.value)
_FINISHED = "notify.finished"  # Session.info key: the terminal moves its transaction made, counted at commit


def count_finished(uow: UnitOfWork, channel: str, status: D) -> None:
    """Count a message that became terminal in `uow`, once its transaction commits: a rolled-back move (made
    again later) is not counted, so each message counts exactly once."""
    if status in TERMINAL:
        uow.session.info.setdefault(_FINISHED, []).append((str(channel), D(status).value))


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's commit is not yet the transaction's
        for channel, status in session.info.pop(_FINISHED, ()):
            FINISHED.labels(channel, status).inc()


@event.listens_for(Session, "after_transaction_end")
def _forget_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # rolled back or closed: what is left never happened
        session.info.pop(_FINISHED, None)

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
        count_finished(uow, row["channel"], status)
    return before


async def record_status(runtime: ServiceRuntime, notification_id: uuid.UUID, status: D | None,
                        values: Mapping[str, Any], *, answer: bool = False) -> D | None:
    async with runtime.uow() as uow:
        before = await move(uow, notification_id, status, values, answer=answer)
        await uow.commit()
        return before
