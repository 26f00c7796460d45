"""Possible duplicates: cases in the same commune, close in time, that share a caller's number or a
victim's or suspect's details. They are flagged for a supervisor, who merges or dismisses them."""
import uuid
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import and_, select, text, update

from runtime.problems import Conflict, DomainError, NotFound
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseMerged, CaseStatusChanged
from schemas.vocab import CaseOutcome, CaseStatus
from services.intake.actors import Actor
from services.intake.cases.repository import case_row, load_cases, locked_for_change
from services.intake.cases.schemas import CaseOut
from services.intake.models import SCHEMA, cases, duplicate_flags

WINDOW = timedelta(days=30)


class DuplicateFlag(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    other_case_id: uuid.UUID
    reasons: list[str]
    status: str
    created_at: datetime
    resolved_by: str | None
    resolved_at: datetime | None


# What makes two cases in one commune, close in time, possibly the same: a shared caller's number,
# victim's name or suspect's description, compared by their keyed hashes. `mine` lists the case's own
# hashes as (rank, reason, value); the rank orders the reasons and says which table to search.
MINE_IN_TABLES = f"""
    mine AS (
        SELECT 1 AS rank, 'same_caller_phone' AS reason, caller_phone_hmac AS value
        FROM {SCHEMA}.contacts WHERE case_id = :me AND caller_phone_hmac IS NOT NULL
        UNION ALL SELECT 2, 'same_victim', name_index
        FROM {SCHEMA}.victims WHERE case_id = :me AND name_index IS NOT NULL
        UNION ALL SELECT 3, 'same_suspect', description_index
        FROM {SCHEMA}.traffickers WHERE case_id = :me AND description_index IS NOT NULL
    )"""

# Flags the case `me` (id, commune_code, reported_at) against its candidates, given `mine`. One flag
# per pair, the smaller id first; sharing is symmetric, so the reasons found are all of them: refresh
# them and keep the flag's status.
FLAG_SHARED = f"""
    candidates AS (
        SELECT k.id FROM {SCHEMA}.cases k, me
        WHERE k.commune_code = me.commune_code AND k.id <> me.id AND k.merged_into IS NULL
          AND k.reported_at BETWEEN me.reported_at - make_interval(days => {WINDOW.days})
                                AND me.reported_at + make_interval(days => {WINDOW.days})
        LIMIT 500
    ),
    shared AS (
        SELECT x.case_id AS other, m.rank, m.reason FROM mine m
        JOIN {SCHEMA}.contacts x ON m.rank = 1 AND x.caller_phone_hmac = m.value
        JOIN candidates k ON k.id = x.case_id
        UNION SELECT v.case_id, m.rank, m.reason FROM mine m
        JOIN {SCHEMA}.victims v ON m.rank = 2 AND v.name_index = m.value
        JOIN candidates k ON k.id = v.case_id
        UNION SELECT t.case_id, m.rank, m.reason FROM mine m
        JOIN {SCHEMA}.traffickers t ON m.rank = 3 AND t.description_index = m.value
        JOIN candidates k ON k.id = t.case_id
    ),
    flagged AS (
        INSERT INTO {SCHEMA}.duplicate_flags (id, case_id, other_case_id, reasons)
        SELECT gen_random_uuid(), LEAST(me.id, s.other), GREATEST(me.id, s.other),
               array_agg(s.reason ORDER BY s.rank)
        FROM shared s, me GROUP BY me.id, s.other
        ON CONFLICT ON CONSTRAINT uq_duplicate_pair DO UPDATE SET reasons = EXCLUDED.reasons
    )"""

_FLAG_CASE = text(f"""
    WITH me AS (SELECT id, commune_code, reported_at FROM {SCHEMA}.cases WHERE id = :me),
    {MINE_IN_TABLES},
    {FLAG_SHARED}
    SELECT 1""")


async def flag_possible_duplicates(uow: UnitOfWork, case_id: uuid.UUID) -> None:
    """Called in the transaction that changed the case, so a flag never lags behind the facts."""
    await uow.session.execute(_FLAG_CASE, {"me": case_id})


async def list_flags(uow: UnitOfWork, status: str | None, limit: int) -> list[DuplicateFlag]:
    query = select(duplicate_flags).order_by(duplicate_flags.c.created_at.desc()).limit(limit)
    if status:
        query = query.where(duplicate_flags.c.status == status)
    return [DuplicateFlag.model_validate(dict(r)) for r in (await uow.session.execute(query)).mappings()]


async def dismiss(uow: UnitOfWork, actor: Actor, flag_id: uuid.UUID) -> DuplicateFlag:
    row = (await uow.session.execute(
        update(duplicate_flags).where(duplicate_flags.c.id == flag_id, duplicate_flags.c.status == "open")
        .values(status="dismissed", resolved_by=actor.subject, resolved_at=datetime.now(UTC))
        .returning(duplicate_flags))).mappings().first()
    if row is None:
        raise NotFound(f"no open duplicate flag {flag_id}")
    await uow.commit()
    return DuplicateFlag.model_validate(dict(row))


async def merge(uow: UnitOfWork, actor: Actor, case_id: uuid.UUID, into_case_id: uuid.UUID,
                if_match: int | None) -> CaseOut:
    """Close `case_id` as a duplicate of `into_case_id`. Nothing is deleted: both histories remain."""
    if case_id == into_case_id:
        raise DomainError("a case cannot be merged into itself", field="into_case_id")
    row = await locked_for_change(uow, actor, case_id, if_match)
    if row["status"] == CaseStatus.closed:
        raise Conflict("the case is already closed; reopen it first to merge it", field="case_id")
    survivor = await case_row(uow, into_case_id, cases.c.merged_into)
    if survivor is None or survivor["merged_into"] is not None:
        raise DomainError(f"no case {into_case_id} to merge into", field="into_case_id")
    now = datetime.now(UTC)
    await uow.session.execute(update(cases).where(cases.c.id == case_id).values(
        status=CaseStatus.closed, outcome=CaseOutcome.duplicate, merged_into=into_case_id, closed_at=now,
        version=cases.c.version + 1, updated_at=now))
    pair = sorted((case_id, into_case_id), key=str)
    await uow.session.execute(update(duplicate_flags).where(and_(
        duplicate_flags.c.case_id == pair[0], duplicate_flags.c.other_case_id == pair[1]))
        .values(status="merged", resolved_by=actor.subject, resolved_at=now))
    merged = (await load_cases(uow, [await case_row(uow, case_id)]))[0]
    uow.emit(CaseStatusChanged(
        case_id=case_id, case_number=merged.case_number, province_code=merged.province_code,
        version=merged.version, from_status=row["status"], to_status=CaseStatus.closed,
        outcome=CaseOutcome.duplicate, changed_at=now), key=str(case_id), subject=merged.case_number)
    uow.emit(CaseMerged(case_id=case_id, case_number=merged.case_number, into_case_id=into_case_id,
                        into_case_number=survivor["case_number"], merged_at=now),
             key=str(case_id), subject=merged.case_number)
    await uow.commit()
    return merged
