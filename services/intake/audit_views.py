from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from runtime.auth import Principal, Role, require
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from services.intake import audit

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=audit.AuditPage)
async def list_audit(
    uow: Annotated[UnitOfWork, Depends(get_uow)],
    _: Annotated[Principal, Depends(require(Role.AUDITOR))],
    case_id: UUID | None = None,
    contact_id: UUID | None = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> audit.AuditPage:
    """Who read which personal data, newest first. For auditors only."""
    return await audit.list_records(uow, case_id=case_id, contact_id=contact_id, actor=actor, cursor=cursor,
                                    limit=limit)
