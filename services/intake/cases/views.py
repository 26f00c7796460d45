from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Response, status

from runtime.service import get_uow
from runtime.uow import UnitOfWork
from services.intake.cases import service
from services.intake.cases.schemas import CaseOut, CaseReportIn

router = APIRouter(prefix="/cases", tags=["cases"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CaseOut)
async def report_case(
    report: CaseReportIn,
    uow: Uow,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> CaseOut:
    """Record a report of suspected trafficking as a case; referral acts on it within seconds.

    Send an `Idempotency-Key` header to make retries safe: a repeat returns the first case (200).
    """
    case, created = await service.report_case(uow, report, idempotency_key)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/cases/{case.id}"
    return case


@router.get("/{case_id}", response_model=CaseOut)
async def get_case(case_id: UUID, uow: Uow) -> CaseOut:
    return await service.get_case(uow, case_id)
