"""Reading notifications, and sending a failed one again."""
import uuid
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import insert

from runtime.logging import get_logger
from runtime.pagination import decode_cursor, encode_cursor
from runtime.problems import Conflict, NotFound
from runtime.tracing import current_carrier, trace_id_of
from runtime.uow import UnitOfWork
from schemas.events.notifications import DeliveryStatus as D
from services.notify.delivery.states import FAILED, TERMINAL
from services.notify.models import notifications as t
from services.notify.notifications.handlers import wake_dispatcher
from services.notify.notifications.status import emit_status

log = get_logger(__name__)
Out = TypeVar("Out", bound=BaseModel)
n = t.c
RESEND_WINDOW = timedelta(hours=1)  # a resend is retried this long, like a normal alert


def _out(model: type[Out], row) -> Out:
    data = dict(row)
    return model.model_validate({**data, "trace_id": trace_id_of(data.pop("trace", None))})


def _columns(model: type[BaseModel]):
    return [n[f] for f in model.model_fields if f in n] + [n.trace]


async def page(uow: UnitOfWork, model: type[Out], *, case_id=None, referral_id=None, status=None, channel=None,
               created_from=None, created_to=None, cursor=None, limit=100) -> tuple[list[Out], str | None]:
    """One page, newest first, and the cursor of the next (None at the end)."""
    query = select(*_columns(model)).order_by(n.created_at.desc(), n.id.desc()).limit(limit + 1)
    filters = [
        (case_id, lambda: n.case_id == case_id), (referral_id, lambda: n.referral_id == referral_id),
        (status, lambda: n.status.in_([s.value for s in status])), (channel, lambda: n.channel == channel),
        (created_from, lambda: n.created_at >= created_from), (created_to, lambda: n.created_at < created_to),
    ]
    for value, clause in filters:
        if value is not None:
            query = query.where(clause())
    if cursor:
        at, last = decode_cursor(cursor, uuid.UUID)
        query = query.where(or_(n.created_at < at, and_(n.created_at == at, n.id < last)))
    rows = (await uow.session.execute(query)).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [_out(model, r) for r in rows], encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None


async def one(uow: UnitOfWork, model: type[Out], notification_id: uuid.UUID) -> Out:
    row = (await uow.session.execute(select(*_columns(model)).where(n.id == notification_id))).mappings().first()
    if row is None:
        raise NotFound(f"no notification {notification_id}")
    return _out(model, row)


async def resend(uow: UnitOfWork, notification_id: uuid.UUID, by: str) -> uuid.UUID:
    """A new notification copying a failed one; committed. The copy keeps the message, recipient and
    priority, and starts its own lifecycle and retries."""
    old = (await uow.session.execute(select(t).where(n.id == notification_id).with_for_update())).mappings().first()
    if old is None:
        raise NotFound(f"no notification {notification_id}")
    if old["status"] not in FAILED:
        raise Conflict(f"notification {notification_id} is {old['status']}: only a failed one is sent again",
                       field="status")
    pending = await uow.session.scalar(select(n.id).where(n.resend_of == notification_id,
                                                          n.status.not_in([s.value for s in TERMINAL])))
    if pending is not None:
        raise Conflict(f"notification {pending} is already resending it", field="notification_id")
    now, new_id = datetime.now(UTC), uuid.uuid4()
    copied = {c: old[c] for c in ("referral_id", "case_id", "channel", "recipient", "subject", "body", "kind",
                                  "language", "template_id", "template_version", "priority", "segments", "encoding",
                                  "webhook_endpoint_id", "context")}
    await uow.session.execute(insert(t).values(
        **copied, id=new_id, source_id=uuid.uuid4(), status=D.created, resend_of=notification_id,
        trace=current_carrier(), retry_until=now + RESEND_WINDOW, created_at=now, updated_at=now))
    emit_status(uow, {**copied, "id": new_id, "attempts": 0}, D.created, now)
    await wake_dispatcher(uow)
    await uow.commit()
    log.info("notification_resend", notification_id=str(new_id), resend_of=str(notification_id), by=by)
    return new_id
