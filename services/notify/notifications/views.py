"""Hotline staff see every alert and its delivery; a failed one can be sent again."""
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from runtime.auth import Principal, Role, require
from runtime.problems import problems
from runtime.inputs import IsoDateTime
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from schemas.events.notifications import DeliveryStatus
from services.notify.notifications import service

router = APIRouter(prefix="/notifications", tags=["notifications"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]
STAFF = require(Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN)


class NotificationOut(BaseModel):
    id: UUID
    referral_id: UUID
    case_id: UUID
    kind: str
    channel: str
    recipient: str
    language: str
    status: DeliveryStatus
    priority: int
    attempts: int
    provider: str | None
    provider_code: str | None
    provider_ref: str | None
    template_version: int | None
    segments: int | None
    encoding: str | None
    resend_of: UUID | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    updated_at: datetime
    trace_id: str | None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None


class NotificationDetail(NotificationOut):
    subject: str
    body: str  # the rendered text: reference, urgency, place, deadline, link; never personal data


@router.get("", response_model=NotificationPage, dependencies=[Depends(STAFF)])
async def list_notifications(
    uow: Uow,
    case_id: Annotated[UUID | None, Query()] = None,
    referral_id: Annotated[UUID | None, Query()] = None,
    status: Annotated[list[DeliveryStatus] | None, Query()] = None,
    channel: Annotated[str | None, Query(pattern="^(email|sms|webhook)$")] = None,
    created_from: Annotated[IsoDateTime | None, Query(alias="from")] = None,
    created_to: Annotated[IsoDateTime | None, Query(alias="to")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> NotificationPage:
    """Newest first. `status` may repeat (e.g. every failure); `from`/`to` bound the creation time."""
    items, next_cursor = await service.page(
        uow, NotificationOut, case_id=case_id, referral_id=referral_id, status=status, channel=channel,
        created_from=created_from, created_to=created_to, cursor=cursor, limit=limit)
    return NotificationPage(items=items, next_cursor=next_cursor)


@router.get("/{notification_id}", response_model=NotificationDetail, dependencies=[Depends(STAFF)],
            responses=problems(404))
async def get_notification(notification_id: UUID, uow: Uow) -> NotificationDetail:
    return await service.one(uow, NotificationDetail, notification_id)


@router.post("/{notification_id}/resend", response_model=NotificationDetail, status_code=201,
             responses=problems(404, 409))
async def resend(notification_id: UUID, uow: Uow,
                 principal: Annotated[Principal, Depends(STAFF)]) -> NotificationDetail:
    """A failed alert, sent again to the same recipient as a new notification (`resend_of`). Only a message
    that failed for good; one resend at a time (409 while the last is still on its way)."""
    new_id = await service.resend(uow, notification_id, principal.subject)
    return await service.one(uow, NotificationDetail, new_id)
