"""Names and free text of a case: read only on purpose, and every read is audited."""
import uuid
from datetime import UTC, datetime

from sqlalchemy import insert, select

from runtime.uow import UnitOfWork
from schemas.events.cases import CaseNoteAdded
from services.intake.actors import Actor
from services.intake.audit import record_read
from services.intake.cases.schemas import NoteIn, NoteOut, PersonalDataOut
from services.intake.cases.service import get_case
from services.intake.models import (
    PERSONAL_CASE_FIELDS, PERSONAL_TRAFFICKER_FIELDS, PERSONAL_VICTIM_FIELDS, case_notes, cases, traffickers, victims,
)


async def read_personal_data(uow: UnitOfWork, actor: Actor, case_id: uuid.UUID) -> PersonalDataOut:
    await get_case(uow, actor, case_id)  # visibility first: a hidden case is a 404, and no audit noise
    case = (await uow.session.execute(
        select(*(cases.c[f] for f in PERSONAL_CASE_FIELDS)).where(cases.c.id == case_id))).mappings().one()
    vs = (await uow.session.execute(select(victims.c.position, *(victims.c[f] for f in PERSONAL_VICTIM_FIELDS))
                                    .where(victims.c.case_id == case_id).order_by(victims.c.position))).mappings()
    ts = (await uow.session.execute(
        select(traffickers.c.position, *(traffickers.c[f] for f in PERSONAL_TRAFFICKER_FIELDS))
        .where(traffickers.c.case_id == case_id).order_by(traffickers.c.position))).mappings()
    notes = (await uow.session.execute(
        select(case_notes.c.id, case_notes.c.author, case_notes.c.text, case_notes.c.created_at)
        .where(case_notes.c.case_id == case_id).order_by(case_notes.c.created_at))).mappings()
    out = PersonalDataOut(**case, victims=[dict(v) for v in vs], traffickers=[dict(t) for t in ts],
                          notes=[dict(n) for n in notes])
    fields = [*PERSONAL_CASE_FIELDS, *(f"victims.{f}" for f in PERSONAL_VICTIM_FIELDS),
              *(f"traffickers.{f}" for f in PERSONAL_TRAFFICKER_FIELDS), "notes.text"]
    await record_read(uow, actor, fields, case_id=case_id)
    await uow.commit()
    return out


async def add_note(uow: UnitOfWork, actor: Actor, case_id: uuid.UUID, note: NoteIn) -> NoteOut:
    case = await get_case(uow, actor, case_id)
    out = NoteOut(id=uuid.uuid4(), author=actor.subject, created_at=datetime.now(UTC))
    await uow.session.execute(insert(case_notes).values(**out.model_dump(), case_id=case_id, text=note.text))
    uow.emit(CaseNoteAdded(case_id=case_id, case_number=case.case_number, note_id=out.id, added_at=out.created_at),
             key=str(case_id), subject=case.case_number)
    await uow.commit()
    return out
