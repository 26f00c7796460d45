from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Response, status

from runtime.auth import Principal, Role, require
from runtime.etags import etag, parse_if_match
from runtime.problems import problems
from runtime.inputs import IsoDateTime
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from schemas.events.common import Urgency
from schemas.vocab import CaseStatus
from services.intake.actors import Actor
from services.intake.cases import personal, service
from services.intake.cases.schemas import (
    CaseDetail,
    CaseOut,
    CasePage,
    CasePatch,
    CaseReportIn,
    NoteIn,
    NoteOut,
    PersonalDataOut,
    StatusChangeIn,
)

router = APIRouter(prefix="/cases", tags=["cases"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]
Staff = Annotated[Principal, Depends(require(Role.OPERATOR, Role.SUPERVISOR))]
IdempotencyKey = Annotated[str | None, Header(max_length=200, description="Makes a retried POST safe.")]
IfMatch = Annotated[str | None, Header(description="The ETag of the case as you last read it.")]


def actor(principal: Principal) -> Actor:
    return Actor(principal.subject, principal.has(Role.SUPERVISOR))


def _with_etag(response: Response, case: CaseOut) -> CaseOut:
    response.headers["ETag"] = etag(case.version)
    return case


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CaseOut,
             responses={200: {"model": CaseOut, "description": "A retry: the case its Idempotency-Key created"},
                        **problems(409)})
async def report_case(report: CaseReportIn, uow: Uow, principal: Staff, response: Response,
                      idempotency_key: IdempotencyKey = None) -> CaseOut:
    """Record a report of suspected trafficking as a case; referral acts on it within seconds.

    With an `Idempotency-Key`, a retry returns the first case (200); the same key with another body is a 422.
    """
    case, created = await service.report_case(uow, actor(principal), report, idempotency_key)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/cases/{case.id}"
    return _with_etag(response, case)


@router.get("", response_model=CasePage)
async def list_cases(
    uow: Uow, principal: Staff,
    status_: Annotated[CaseStatus | None, Query(alias="status")] = None,
    urgency: Urgency | None = None,
    province_code: Annotated[str | None, Query(pattern=r"^[0-9]{2}$")] = None,
    reported_from: IsoDateTime | None = None,
    reported_to: IsoDateTime | None = None,
    operator: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CasePage:
    """Newest first. Operators see their own cases; supervisors see all."""
    return await service.list_cases(uow, actor(principal), status=status_, urgency=urgency,
                                    province_code=province_code, reported_from=reported_from,
                                    reported_to=reported_to, operator=operator, cursor=cursor, limit=limit)


@router.get("/{case_id}", response_model=CaseDetail, responses=problems(404))
async def get_case(case_id: UUID, uow: Uow, principal: Staff, response: Response) -> CaseDetail:
    """The case without personal data, with its referrals as referral's events told them (no agency contacts).
    Its `ETag` is the version to send back in `If-Match`; a referral's progress does not change it."""
    return _with_etag(response, await service.get_case_detail(uow, actor(principal), case_id))


@router.patch("/{case_id}", response_model=CaseOut, responses=problems(404, 412, 428))
async def update_case(case_id: UUID, patch: CasePatch, uow: Uow, principal: Staff, response: Response,
                      if_match: IfMatch = None) -> CaseOut:
    """Change facts. Needs `If-Match`: a stale ETag is a 412, so nobody silently overwrites anybody."""
    case = await service.update_case(uow, actor(principal), case_id, patch, parse_if_match(if_match))
    return _with_etag(response, case)


@router.post("/{case_id}/status", response_model=CaseOut, responses=problems(404, 412, 428))
async def change_status(case_id: UUID, change: StatusChangeIn, uow: Uow, principal: Staff, response: Response,
                        if_match: IfMatch = None) -> CaseOut:
    """open → referred → in progress → closed (with an outcome). Reopening is for supervisors."""
    case = await service.change_status(uow, actor(principal), case_id, change, parse_if_match(if_match))
    return _with_etag(response, case)


@router.get("/{case_id}/personal-data", response_model=PersonalDataOut, responses=problems(404))
async def personal_data(case_id: UUID, uow: Uow, principal: Staff) -> PersonalDataOut:
    """Names, free text and notes of the case. Each read is recorded in the audit log."""
    return await personal.read_personal_data(uow, actor(principal), case_id)


@router.post("/{case_id}/notes", status_code=status.HTTP_201_CREATED, response_model=NoteOut,
             responses=problems(404))
async def add_note(case_id: UUID, note: NoteIn, uow: Uow, principal: Staff) -> NoteOut:
    """A note on the case, stored encrypted."""
    return await personal.add_note(uow, actor(principal), case_id, note)
