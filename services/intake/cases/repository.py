"""Reading and writing a case with its victims and traffickers."""
import uuid
from collections import defaultdict

from sqlalchemy import delete, select

from runtime.uow import UnitOfWork
from services.intake.cases.schemas import CaseOut, TraffickerIn, TraffickerOut, VictimIn, VictimOut
from services.intake.models import cases, traffickers, victims

CASE_COLUMNS = [cases.c[f] for f in CaseOut.model_fields if f in cases.c]
VICTIM_COLUMNS = [victims.c.case_id, *(victims.c[f] for f in VictimOut.model_fields)]
TRAFFICKER_COLUMNS = [traffickers.c.case_id, *(traffickers.c[f] for f in TraffickerOut.model_fields)]


async def write_people(uow: UnitOfWork, case_id: uuid.UUID, people_v: list[VictimIn] | None,
                       people_t: list[TraffickerIn] | None) -> None:
    """Replace the lists that are given; leave the others."""
    if people_v is not None:
        await uow.session.execute(delete(victims).where(victims.c.case_id == case_id))
        if people_v:
            await uow.session.execute(victims.insert(), [
                {"id": uuid.uuid4(), "case_id": case_id, "position": i, **v.model_dump()} for i, v in enumerate(people_v)
            ])
    if people_t is not None:
        await uow.session.execute(delete(traffickers).where(traffickers.c.case_id == case_id))
        if people_t:
            await uow.session.execute(traffickers.insert(), [
                {"id": uuid.uuid4(), "case_id": case_id, "position": i, **t.model_dump()} for i, t in enumerate(people_t)
            ])


async def load_cases(uow: UnitOfWork, rows) -> list[CaseOut]:
    """Case rows (mappings) → CaseOut with their victims and traffickers, in two queries for any count."""
    ids = [r["id"] for r in rows]
    vs, ts = defaultdict(list), defaultdict(list)
    if ids:
        for v in (await uow.session.execute(
            select(*VICTIM_COLUMNS).where(victims.c.case_id.in_(ids)).order_by(victims.c.position)
        )).mappings():
            vs[v["case_id"]].append(VictimOut.model_validate(dict(v)))
        for t in (await uow.session.execute(
            select(*TRAFFICKER_COLUMNS).where(traffickers.c.case_id.in_(ids)).order_by(traffickers.c.position)
        )).mappings():
            ts[t["case_id"]].append(TraffickerOut.model_validate(dict(t)))
    return [CaseOut.model_validate({**r, "victims": vs[r["id"]], "traffickers": ts[r["id"]]}) for r in rows]


async def case_row(uow: UnitOfWork, case_id: uuid.UUID, *extra, for_update: bool = False):
    query = select(*CASE_COLUMNS, *extra).where(cases.c.id == case_id)
    if for_update:
        query = query.with_for_update()
    return (await uow.session.execute(query)).mappings().first()
