"""Possible duplicates: cases in the same commune, close in time, that share a caller's number or a
victim's or suspect's details. They are flagged for a supervisor, who merges or dismisses them."""
import uuid
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import and_, bindparam, literal, select, union_all, update
from sqlalchemy.dialects.postgresql import insert

from runtime.problems import Conflict, DomainError, NotFound
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseMerged, CaseStatusChanged
from schemas.vocab import CaseOutcome, CaseStatus
from services.intake.actors import Actor
from services.intake.cases.repository import case_row, load_cases, locked_for_change
from services.intake.cases.schemas import CaseOut
from services.intake.models import cases, contacts, duplicate_flags, traffickers, victims

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


def _shared(reason: str, table, index_col: str):
    """Cases among :others sharing an index value with case :me, labelled with why. Built once:
    fresh aliases per call cost more CPU than the queries themselves."""
    mine, theirs = table.alias(), table.alias()
    return (select(theirs.c.case_id.label("other"), literal(reason).label("reason")).distinct()
            .join(mine, mine.c[index_col] == theirs.c[index_col])
            .where(mine.c.case_id == bindparam("me"), theirs.c.case_id.in_(bindparam("others", expanding=True)),
                   mine.c[index_col].is_not(None)))


_SHARED = union_all(
    _shared("same_caller_phone", contacts, "caller_phone_hmac"),
    _shared("same_victim", victims, "name_index"),
    _shared("same_suspect", traffickers, "description_index"),
)
_CANDIDATES = (
    select(cases.c.id)
    .where(cases.c.commune_code == bindparam("commune"), cases.c.id != bindparam("me"),
           cases.c.merged_into.is_(None), cases.c.reported_at.between(bindparam("since"), bindparam("until")))
    .limit(500)
)


async def flag_possible_duplicates(uow: UnitOfWork, case_id: uuid.UUID) -> None:
    """Called in the transaction that changed the case, so a flag never lags behind the facts."""
    me = (await uow.session.execute(
        select(cases.c.commune_code, cases.c.reported_at).where(cases.c.id == case_id))).first()
    if me is None or me.commune_code is None:
        return
    others = list((await uow.session.scalars(_CANDIDATES, {
        "commune": me.commune_code, "me": case_id,
        "since": me.reported_at - WINDOW, "until": me.reported_at + WINDOW})).all())
    if not others:
        return
    reasons: dict[uuid.UUID, list[str]] = {}
    for other, reason in (await uow.session.execute(_SHARED, {"me": case_id, "others": others})).all():
        reasons.setdefault(other, []).append(reason)
    for other, why in reasons.items():
        first, second = sorted((case_id, other), key=str)  # one flag per pair, whichever came first
        stmt = insert(duplicate_flags).values(id=uuid.uuid4(), case_id=first, other_case_id=second, reasons=why)
        # Sharing is symmetric, so `why` is already every reason: refresh it, keep the flag's status.
        await uow.session.execute(stmt.on_conflict_do_update(
            constraint="uq_duplicate_pair", set_={"reasons": stmt.excluded.reasons}))


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
