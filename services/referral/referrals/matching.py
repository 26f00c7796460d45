"""Who gets a case: the province police where it happened; the national department if none is listed."""
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referral.models import agency_units


@dataclass(frozen=True)
class Match:
    unit_id: UUID
    unit_name: str
    kind: str
    email: str | None
    sms: str | None
    reason: str


async def match_police(session: AsyncSession, province_code: str) -> Match:
    cols = (agency_units.c.id, agency_units.c.name, agency_units.c.kind, agency_units.c.email, agency_units.c.sms)
    active = agency_units.c.active.is_(True)
    row = (
        await session.execute(
            select(*cols).where(active, agency_units.c.kind == "police_province",
                                agency_units.c.province_code == province_code)
        )
    ).first()
    if row is not None:
        return Match(*row, reason=f"province police for province {province_code}")
    row = (await session.execute(select(*cols).where(active, agency_units.c.kind == "police_national"))).first()
    if row is None:
        raise LookupError("directory has neither a province police unit nor the national department")
    return Match(*row, reason=f"no active province police for {province_code}: national department")
