from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status

from runtime.problems import problems
from runtime.inputs import IsoDateTime
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from schemas.events.common import Channel
from schemas.vocab import ContactType
from services.intake.cases.views import IdempotencyKey, Staff, actor
from services.intake.contacts import service
from services.intake.contacts.schemas import AttachIn, ContactIn, ContactOut, ContactPage, ContactPersonalDataOut

router = APIRouter(prefix="/contacts", tags=["contacts"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ContactOut,
             responses={200: {"model": ContactOut, "description": "A retry: the contact its Idempotency-Key recorded"},
                        **problems(409)})
async def record_contact(contact: ContactIn, uow: Uow, principal: Staff, response: Response,
                         idempotency_key: IdempotencyKey = None) -> ContactOut:
    """Record a contact, case or not: every call counts. Tells how often the number called before."""
    out, created = await service.record_contact(uow, actor(principal), contact, idempotency_key)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/contacts/{out.id}"
    return out


@router.get("", response_model=ContactPage)
async def list_contacts(
    uow: Uow, principal: Staff,
    contact_type: ContactType | None = None,
    channel: Channel | None = None,
    operator: Annotated[str | None, Query(max_length=200)] = None,
    case_id: UUID | None = None,
    started_from: IsoDateTime | None = None,
    started_to: IsoDateTime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ContactPage:
    return await service.list_contacts(uow, actor(principal), contact_type=contact_type, channel=channel,
                                       operator=operator, case_id=case_id, started_from=started_from,
                                       started_to=started_to, cursor=cursor, limit=limit)


@router.get("/{contact_id}", response_model=ContactOut, responses=problems(404))
async def get_contact(contact_id: UUID, uow: Uow, principal: Staff) -> ContactOut:
    return await service.get_contact(uow, actor(principal), contact_id)


@router.get("/{contact_id}/personal-data", response_model=ContactPersonalDataOut, responses=problems(404))
async def personal_data(contact_id: UUID, uow: Uow, principal: Staff) -> ContactPersonalDataOut:
    """Caller's name, number and notes. Each read is recorded in the audit log."""
    return await service.personal_data(uow, actor(principal), contact_id)


@router.post("/{contact_id}/attach", response_model=ContactOut, responses=problems(404, 409))
async def attach(contact_id: UUID, body: AttachIn, uow: Uow, principal: Staff) -> ContactOut:
    """Attach the contact to a case (a later call about the same situation)."""
    return await service.attach(uow, actor(principal), contact_id, body.case_id)
