"""Reading and writing a case with its victims and traffickers."""
import uuid
from collections import defaultdict

from sqlalchemy import delete, select

from runtime.crypto import blind_index
from runtime.problems import NotFound, PreconditionFailed, PreconditionRequired
from runtime.uow import UnitOfWork
from services.intake.actors import Actor
from services.intake.cases.schemas import CaseOut, TraffickerIn, TraffickerOut, VictimIn, VictimOut
from services.intake.models import cases, traffickers, victims

CASE_COLUMNS = [cases.c[f] for f in CaseOut.model_fields if f in cases.c]
VICTIM_COLUMNS = [victims.c.case_id, *(victims.c[f] for f in VictimOut.model_fields)]
TRAFFICKER_COLUMNS = [traffickers.c.case_id, *(traffickers.c[f] for f in TraffickerOut.model_fields)]


def victim_rows(case_id: uuid.UUID, people: list[VictimIn]) -> list[dict]:
    return [{"id": uuid.uuid4(), "case_id": case_id, "position": i, **v.model_dump(),
             "name_index": blind_index(v.name, "name") if v.name else None} for i, v in enumerate(people)]


def trafficker_rows(case_id: uuid.UUID, people: list[TraffickerIn]) -> list[dict]:
    return [{"id": uuid.uuid4(), "case_id": case_id, "position": i, **t.model_dump(),
             "description_index": blind_index(t.description, "suspect") if t.description else None}
            for i, t in enumerate(people)]


async def write_people(uow: UnitOfWork, case_id: uuid.UUID, people_v: list[VictimIn] | None,
                       people_t: list[TraffickerIn] | None) -> None:
    """Replace the lists that are given; leave the others."""
    for table, people, rows in ((victims, people_v, victim_rows), (traffickers, people_t, trafficker_rows)):
        if people is not None:
            await uow.session.execute(delete(table).where(table.c.case_id == case_id))
            if people:
                await uow.session.execute(table.insert(), rows(case_id, people))


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


async def locked_for_change(uow: UnitOfWork, actor: Actor, case_id: uuid.UUID, if_match: int | None):
    if if_match is None:
        raise PreconditionRequired("send If-Match with the case's ETag to change it", field="If-Match")
    row = await case_row(uow, case_id, cases.c.urgency_reason, for_update=True)
    if row is None or not actor.may_see(row["operator"]):
        raise NotFound(f"no case {case_id}")
    if row["version"] != if_match:
        raise PreconditionFailed(
            f"the case changed since you read it (now version {row['version']}); reload and reapply",
            field="If-Match",
        )
    return row
