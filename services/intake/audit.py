"""The audit trail of reads of personal data: who, when, which case or contact, which fields."""
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import and_, insert, or_, select

from runtime.pagination import decode_cursor, encode_cursor
from runtime.uow import UnitOfWork
from services.intake.actors import Actor
from services.intake.models import audit_log


class AuditRecord(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    case_id: UUID | None
    contact_id: UUID | None
    fields: list[str]


class AuditPage(BaseModel):
    items: list[AuditRecord]
    next_cursor: str | None


async def record_read(uow: UnitOfWork, actor: Actor, fields: list[str], *, case_id: UUID | None = None,
                      contact_id: UUID | None = None) -> None:
    """Written in the reader's transaction: no read without its record."""
    await uow.session.execute(insert(audit_log).values(
        actor=actor.subject, action="read_personal_data", case_id=case_id, contact_id=contact_id, fields=fields,
    ))


async def list_records(uow: UnitOfWork, *, case_id=None, contact_id=None, actor=None, cursor=None,
                       limit=100) -> AuditPage:
    t = audit_log.c
    conditions = [t.case_id == case_id if case_id else None, t.contact_id == contact_id if contact_id else None,
                  t.actor == actor if actor else None]
    if cursor:
        at, last = decode_cursor(cursor, int)
        conditions.append(or_(t.at < at, and_(t.at == at, t.id < last)))
    rows = (await uow.session.execute(
        select(audit_log).where(*[c for c in conditions if c is not None])
        .order_by(t.at.desc(), t.id.desc()).limit(limit + 1)
    )).mappings().all()
    items = [AuditRecord.model_validate(dict(r)) for r in rows[:limit]]
    nxt = encode_cursor(items[-1].at, items[-1].id) if len(rows) > limit else None
    return AuditPage(items=items, next_cursor=nxt)
