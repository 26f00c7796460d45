"""Delivery receipts: SMS providers call back with what became of each message. Each provider's callback
is authenticated and mapped by its own adapter; a receipt only ever moves a message forward."""
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import or_, select

from runtime.logging import get_logger
from runtime.problems import NotFound, Unauthorized
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from schemas.events.notifications import DeliveryStatus as D
from services.notify.delivery.outcome import Receipt
from services.notify.delivery.providers import BadCallback
from services.notify.delivery.registry import Senders
from services.notify.models import notifications as t
from services.notify.notifications.status import move

log = get_logger(__name__)
router = APIRouter(prefix="/callbacks", tags=["callbacks"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]


async def _senders(request: Request) -> Senders:  # async: no worker-thread hop per receipt
    return request.app.state.senders


@router.post("/sms/{provider}", status_code=204, response_class=Response,
             responses={401: {"description": "Not signed by the provider"}, 404: {"description": "Unknown message"}})
async def sms_receipt(provider: str, request: Request, uow: Uow,
                      senders: Annotated[Senders, Depends(_senders)]) -> Response:
    parser = senders.receipt_parser(provider)
    if parser is None:
        raise NotFound(f"no SMS provider {provider!r}", field="provider")
    body = await request.body()
    try:
        receipt = parser.receipt(body, dict(request.headers), str(request.url))
    except BadCallback as exc:
        log.warning("receipt_refused", provider=provider, reason=str(exc))
        raise Unauthorized("this callback is not signed by the provider, or cannot be read") from exc
    await apply_receipt(uow, provider, receipt)
    await uow.commit()
    return Response(status_code=204)


async def apply_receipt(uow: UnitOfWork, provider: str, receipt: Receipt) -> None:
    """Uncommitted. An unknown message is a 404 and changes nothing; old news (a "sent" after "delivered")
    is accepted and changes nothing."""
    match = t.c.provider_ref == receipt.provider_ref
    reference = _uuid(receipt.reference)
    if reference is not None:  # the provider echoed our id: it finds a message whose answer is not recorded yet
        match = or_(match, t.c.id == reference)
    notification_id = await uow.session.scalar(select(t.c.id).where(t.c.provider == provider, match).limit(1))
    if notification_id is None:
        log.warning("receipt_for_unknown_message", provider=provider, provider_ref=receipt.provider_ref)
        raise NotFound(f"no message {receipt.provider_ref!r} sent through {provider}", field="provider_ref")
    values = {"provider_code": receipt.code, "provider_ref": receipt.provider_ref}
    if receipt.status is D.delivered:
        values["delivered_at"] = datetime.now(UTC)
    before = await move(uow, notification_id, receipt.status, values)
    log.info("receipt", notification_id=str(notification_id), provider=provider, status=receipt.status,
             code=receipt.code, changed=before is not None)


def _uuid(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None
