"""What only supervisors do: merge duplicates, dismiss flags, block and unblock callers."""
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, ConfigDict

from runtime.auth import Principal, Role, require
from runtime.etags import etag, parse_if_match
from runtime.problems import problems
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from services.intake.cases import duplicates
from services.intake.cases.schemas import CaseOut
from services.intake.cases.views import IfMatch, actor
from services.intake.contacts import blocks

router = APIRouter(tags=["supervision"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR))]


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into_case_id: UUID


@router.get("/duplicates", response_model=list[duplicates.DuplicateFlag])
async def list_duplicates(uow: Uow, _: Supervisor,
                          status_: Annotated[str | None, Query(alias="status", pattern="^(open|merged|dismissed)$")] = "open",
                          limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[duplicates.DuplicateFlag]:
    """Possible duplicates: same commune within 30 days, sharing a caller number, a victim or a suspect."""
    return await duplicates.list_flags(uow, status_, limit)


@router.post("/duplicates/{flag_id}/dismiss", response_model=duplicates.DuplicateFlag, responses=problems(404))
async def dismiss_duplicate(flag_id: UUID, uow: Uow, principal: Supervisor) -> duplicates.DuplicateFlag:
    return await duplicates.dismiss(uow, actor(principal), flag_id)


@router.post("/cases/{case_id}/merge", response_model=CaseOut, tags=["cases"], responses=problems(404, 409, 412, 428))
async def merge_case(case_id: UUID, body: MergeIn, uow: Uow, principal: Supervisor, response: Response,
                     if_match: IfMatch = None) -> CaseOut:
    """Close this case as a duplicate of `into_case_id`; both histories stay. Needs the case's `If-Match`."""
    case = await duplicates.merge(uow, actor(principal), case_id, body.into_case_id, parse_if_match(if_match))
    response.headers["ETag"] = etag(case.version)
    return case


@router.post("/contacts/{contact_id}/block", response_model=blocks.BlockOut, status_code=status.HTTP_201_CREATED,
             tags=["contacts"], responses=problems(404))
async def block_caller(contact_id: UUID, body: blocks.BlockIn, uow: Uow, principal: Supervisor) -> blocks.BlockOut:
    """Flag the contact's phone number as blocked for 24 h or 30 days. Its contacts stay recorded."""
    return await blocks.block_caller(uow, actor(principal), contact_id, body)


@router.post("/blocks/{block_id}/lift", response_model=blocks.BlockOut, tags=["contacts"], responses=problems(404))
async def lift_block(block_id: UUID, uow: Uow, principal: Supervisor) -> blocks.BlockOut:
    return await blocks.lift(uow, actor(principal), block_id)
