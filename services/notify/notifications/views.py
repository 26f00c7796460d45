from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select

from runtime.problems import NotFound
from runtime.service import get_uow
from runtime.tracing import trace_id_of
from runtime.uow import UnitOfWork
from services.notify.models import notifications

router = APIRouter(prefix="/notifications", tags=["notifications"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]
n = notifications.c


class NotificationOut(BaseModel):
    id: UUID
    referral_id: UUID
    case_id: UUID
    channel: str
    recipient: str
    status: str
    attempts: int
    provider_code: str | None
    created_at: datetime
    sent_at: datetime | None
    trace_id: str | None


_COLS = (n.id, n.referral_id, n.case_id, n.channel, n.recipient, n.status, n.attempts, n.provider_code,
         n.created_at, n.sent_at, n.trace)


def _out(row) -> NotificationOut:
    data = dict(row)
    return NotificationOut(**data, trace_id=trace_id_of(data.pop("trace")))


@router.get("", response_model=list[NotificationOut])
async def list_notifications(
    uow: Uow,
    case_id: Annotated[UUID | None, Query()] = None,
    referral_id: Annotated[UUID | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[NotificationOut]:
    query = select(*_COLS).order_by(n.created_at.desc()).limit(limit)
    if case_id is not None:
        query = query.where(n.case_id == case_id)
    if referral_id is not None:
        query = query.where(n.referral_id == referral_id)
    return [_out(r) for r in (await uow.session.execute(query)).mappings()]


@router.get("/{notification_id}", response_model=NotificationOut)
async def get_notification(notification_id: UUID, uow: Uow) -> NotificationOut:
    row = (await uow.session.execute(select(*_COLS).where(n.id == notification_id))).mappings().first()
    if row is None:
        raise NotFound(f"no notification {notification_id}")
    return _out(row)
