"""Supervisors' block flags on a calling number: they expire, can be lifted, and never delete history."""
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, insert, select, update

from runtime.problems import DomainError, NotFound
from runtime.uow import UnitOfWork
from services.intake.actors import Actor
from services.intake.models import caller_blocks, contacts


class BlockDuration(StrEnum):
    day = "24h"
    month = "30d"


DURATIONS = {BlockDuration.day: timedelta(hours=24), BlockDuration.month: timedelta(days=30)}


class BlockReason(StrEnum):
    abusive = "abusive"
    prank = "prank"
    other = "other"


class BlockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    duration: BlockDuration
    reason: BlockReason


class BlockOut(BaseModel):
    id: uuid.UUID
    reason: BlockReason
    expires_at: datetime
    created_by: str
    created_at: datetime
    lifted_by: str | None
    lifted_at: datetime | None


def active_block_until(phone_index):
    """A scalar subquery: when the number's latest active block ends, or NULL."""
    b = caller_blocks.c
    return (select(func.max(b.expires_at))
            .where(b.phone_index == phone_index, b.lifted_at.is_(None), b.expires_at > func.now())
            .scalar_subquery())


async def block_caller(uow: UnitOfWork, actor: Actor, contact_id: uuid.UUID, block: BlockIn) -> BlockOut:
    found = (await uow.session.execute(
        select(contacts.c.caller_phone_hmac).where(contacts.c.id == contact_id))).first()
    if found is None:
        raise NotFound(f"no contact {contact_id}")
    phone_index = found[0]
    if phone_index is None:
        raise DomainError("the contact has no phone number to block", field="contact_id")
    now = datetime.now(UTC)
    row = (await uow.session.execute(insert(caller_blocks).values(
        id=uuid.uuid4(), phone_index=phone_index, reason=block.reason, expires_at=now + DURATIONS[block.duration],
        created_by=actor.subject, created_at=now,
    ).returning(caller_blocks))).mappings().one()
    await uow.commit()
    return BlockOut.model_validate(dict(row))


async def lift(uow: UnitOfWork, actor: Actor, block_id: uuid.UUID) -> BlockOut:
    row = (await uow.session.execute(
        update(caller_blocks).where(caller_blocks.c.id == block_id, caller_blocks.c.lifted_at.is_(None))
        .values(lifted_by=actor.subject, lifted_at=datetime.now(UTC)).returning(caller_blocks))).mappings().first()
    if row is None:
        raise NotFound(f"no active block {block_id}")
    await uow.commit()
    return BlockOut.model_validate(dict(row))
