from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel
from sqlalchemy import select

from runtime.problems import NotFound
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from schemas.geography import provinces
from services.reporting.models import cases_by_province, contacts_by_type

router = APIRouter(prefix="/reports", tags=["reports"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]
t = cases_by_province.c


class ProvinceCount(BaseModel):
    province_code: str
    province_name: str
    cases_reported: int
    cases_referred: int


async def _counts(uow: UnitOfWork) -> dict[str, tuple[int, int]]:
    rows = await uow.session.execute(select(t.province_code, t.cases_reported, t.cases_referred))
    return {code: (reported, referred) for code, reported, referred in rows}


@router.get("/cases-by-province", response_model=list[ProvinceCount])
async def cases_by_province_report(uow: Uow) -> list[ProvinceCount]:
    """Cases reported and cases referred, for every province of the 2025 map (zeros included)."""
    counts = await _counts(uow)
    return [ProvinceCount(province_code=c, province_name=n, cases_reported=counts.get(c, (0, 0))[0],
                          cases_referred=counts.get(c, (0, 0))[1]) for c, n in sorted(provinces().items())]


@router.get("/cases-by-province/{province_code}", response_model=ProvinceCount)
async def province_report(uow: Uow, province_code: Annotated[str, Path(pattern=r"^\d{2}$")]) -> ProvinceCount:
    name = provinces().get(province_code)
    if name is None:
        raise NotFound(f"unknown province code {province_code!r} on the 2025 map")
    reported, referred = (await _counts(uow)).get(province_code, (0, 0))
    return ProvinceCount(province_code=province_code, province_name=name, cases_reported=reported,
                         cases_referred=referred)


class ContactCount(BaseModel):
    month: str
    contact_type: str
    channel: str
    contacts: int


@router.get("/contacts", response_model=list[ContactCount])
async def contacts_report(
    uow: Uow,
    month_from: Annotated[str | None, Query(pattern=r"^[0-9]{4}-[0-9]{2}$")] = None,
    month_to: Annotated[str | None, Query(pattern=r"^[0-9]{4}-[0-9]{2}$")] = None,
) -> list[ContactCount]:
    """Contacts received per month, type (information report, consultation, ...) and channel."""
    c = contacts_by_type.c
    query = select(c.month, c.contact_type, c.channel, c.contacts).order_by(c.month, c.contact_type, c.channel)
    if month_from:
        query = query.where(c.month >= month_from)
    if month_to:
        query = query.where(c.month <= month_to)
    return [ContactCount.model_validate(dict(r)) for r in (await uow.session.execute(query)).mappings()]
