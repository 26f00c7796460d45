from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select

from runtime.auth import Role, require
from runtime.problems import NotFound, problems
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from services.referral.models import agency_units, referrals
from services.referral.referrals.schemas import ReferralState

router = APIRouter(tags=["referrals"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]
STAFF = [Depends(require(Role.OPERATOR, Role.SUPERVISOR))]  # hotline staff see every referral


class ReferralOut(ReferralState):
    """Staff see every referral of a case, and what an agency does not: the case id and the chain."""

    case_id: UUID
    agency_unit_id: UUID
    agency_unit_name: str
    previous_referral_id: UUID | None


class AgencyUnitOut(BaseModel):
    id: UUID
    code: str
    name: str
    kind: str
    level: str
    parent_code: str | None
    province_code: str | None
    commune_code: str | None
    region: str | None
    country: str | None
    services: list[str]
    status: str


_REFERRAL_COLS = (*[referrals.c[f] for f in ReferralOut.model_fields if f in referrals.c],
                  agency_units.c.name.label("agency_unit_name"))


def _referral_query():
    return select(*_REFERRAL_COLS).join(agency_units, agency_units.c.id == referrals.c.agency_unit_id)


@router.get("/referrals", response_model=list[ReferralOut], dependencies=STAFF)
async def list_referrals(uow: Uow, case_id: Annotated[UUID | None, Query()] = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[ReferralOut]:
    query = _referral_query().order_by(referrals.c.created_at.desc()).limit(limit)
    if case_id is not None:
        query = query.where(referrals.c.case_id == case_id)
    return [ReferralOut.model_validate(dict(r)) for r in (await uow.session.execute(query)).mappings()]


@router.get("/referrals/{referral_id}", response_model=ReferralOut, dependencies=STAFF, responses=problems(404))
async def get_referral(referral_id: UUID, uow: Uow) -> ReferralOut:
    row = (await uow.session.execute(_referral_query().where(referrals.c.id == referral_id))).mappings().first()
    if row is None:
        raise NotFound(f"no referral {referral_id}")
    return ReferralOut.model_validate(dict(row))


@router.get("/agency-units", response_model=list[AgencyUnitOut], tags=["directory"])
async def list_agency_units(uow: Uow, province_code: Annotated[str | None, Query(pattern=r"^\d{2}$")] = None,
                            kind: Annotated[str | None, Query(max_length=64)] = None,
                            limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AgencyUnitOut]:
    query = select(*[agency_units.c[f] for f in AgencyUnitOut.model_fields]).order_by(agency_units.c.code).limit(limit)
    if province_code is not None:
        query = query.where(agency_units.c.province_code == province_code)
    if kind is not None:
        query = query.where(agency_units.c.kind == kind)
    return [AgencyUnitOut.model_validate(dict(r)) for r in (await uow.session.execute(query)).mappings()]
