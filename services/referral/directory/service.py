"""The directory as its administrators read and change it: plain functions over a unit of work.

Every change holds the directory lock (one writer at a time, so it is decided against what it overwrites),
bumps the changed units' versions and the directory's (running processes reload theirs), and emits one
DirectoryUnitChanged per changed unit, all in one transaction. A change that changes nothing writes nothing.
API bodies and imported files are judged by one validator, the codec's."""
import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from runtime.pagination import decode_key_cursor, encode_key_cursor
from runtime.problems import Conflict, DomainError, NotFound, PreconditionFailed, PreconditionRequired
from runtime.uow import UnitOfWork
from schemas.events.directory import DirectoryChange, DirectoryUnitChanged
from services.referral.directory import codec, repository
from services.referral.directory.codec import DirectoryImportError, RowError
from services.referral.directory.generate import NAMESPACE
from services.referral.directory.model import Unit, UnitStatus
from services.referral.directory.schemas import (
    Format,
    ImportedUnit,
    ImportOut,
    UnitFields,
    UnitIn,
    UnitOut,
    UnitPage,
    UnitQuery,
)
from services.referral.models import agency_units

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # a verification date is a day on the administrators' calendar
FILTERS = ("kind", "level", "province_code", "commune_code", "status")


def local_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(LOCAL_TZ).date()


def change_of(old: Unit | None, new: Unit) -> DirectoryChange | None:
    """What replacing `old` by `new` does; None when it changes nothing."""
    if old is None:
        return DirectoryChange.created
    if new == old:
        return None
    if replace(old, status=new.status) == new:
        return DirectoryChange.status_changed
    if replace(old, last_verified=new.last_verified) == new:
        return DirectoryChange.verified
    return DirectoryChange.updated


def _problems(errors: list[RowError], rows: bool) -> list[dict]:
    """Problem-details entries; a file's entries carry their row (the field is `body` when the whole row, or the
    whole document, is at fault: every entry names a field, as the API's problem schema says).
    Directory data is agency data, never personal data: the codec's messages may quote the value at fault."""
    out = []
    for e in errors:
        where = {"row": e.row, "field": e.field or "body"} if rows else {"field": e.field or "body"}
        out.append(where | {"in": "body", "detail": e.message, "code": "invalid-unit"})
    return out


# ---- reading ---------------------------------------------------------------------------------------------

def _out(row) -> UnitOut:
    unit = repository.unit_from_row(row)
    return UnitOut.model_validate({**codec.to_mapping(unit), "version": row["version"], "updated_at": row["updated_at"]})


async def _row(uow: UnitOfWork, code: str):
    row = (await uow.session.execute(select(agency_units).where(agency_units.c.code == code))).mappings().first()
    if row is None:
        raise NotFound(f"no unit {code}")
    return row


async def get_unit(uow: UnitOfWork, code: str) -> UnitOut:
    return _out(await _row(uow, code))


async def list_units(uow: UnitOfWork, q: UnitQuery, stale_days: int, today: date | None = None) -> UnitPage:
    """Units in code order. Stale: active, and last verified more than `stale_days` days before today, or never."""
    query = select(agency_units)
    for name in FILTERS:
        if (value := getattr(q, name)) is not None:
            query = query.where(agency_units.c[name] == value)
    if q.stale:
        before = (today or local_today()) - timedelta(days=stale_days)
        query = query.where(agency_units.c.status == UnitStatus.active,
                            or_(agency_units.c.last_verified.is_(None), agency_units.c.last_verified < before))
    if q.cursor:
        query = query.where(agency_units.c.code > decode_key_cursor(q.cursor))
    rows = (await uow.session.execute(query.order_by(agency_units.c.code).limit(q.limit + 1))).mappings().all()
    items = [_out(r) for r in rows[:q.limit]]
    return UnitPage(items=items, next_cursor=encode_key_cursor(items[-1].code) if len(rows) > q.limit else None)


async def export(uow: UnitOfWork, fmt: Format) -> str:
    units = await repository.all_units(uow.session)
    # Seconds of CPU for the whole directory in YAML: off the event loop, so matching goes on meanwhile.
    return await asyncio.to_thread(codec.to_csv if fmt is Format.csv else codec.to_yaml, units)


# ---- changing ----------------------------------------------------------------------------------------------

async def _save(uow: UnitOfWork, changes: list[tuple[Unit, DirectoryChange]]) -> None:
    versions = await repository.save(uow.session, [unit for unit, _ in changes])
    now = datetime.now(UTC)
    for unit, change in changes:
        uow.emit(DirectoryUnitChanged(
            unit_id=unit.id, code=unit.code, kind=unit.kind, level=unit.level, province_code=unit.province_code,
            commune_code=unit.commune_code, status=unit.status, version=versions[unit.code], change=change,
            changed_at=now,
        ), key=unit.code, subject=unit.code)


async def _known(uow: UnitOfWork, parent_code: str | None) -> set[str]:
    """The parent's code when the directory has it: all the codec needs to know of the directory."""
    if parent_code is None:
        return set()
    found = await uow.session.scalar(select(agency_units.c.code).where(agency_units.c.code == parent_code))
    return {found} if found else set()


async def _from_body(uow: UnitOfWork, body: UnitFields, code: str, unit_id: uuid.UUID) -> Unit:
    record = body.model_dump(mode="json") | {"code": code, "id": str(unit_id)}
    try:
        ((_, unit),) = codec.parse_mappings([record], await _known(uow, body.parent_code))
    except DirectoryImportError as exc:
        detail = "; ".join(f"{e.field or 'body'}: {e.message}" for e in exc.errors)
        raise DomainError(detail, errors=_problems(exc.errors, rows=False)) from None
    return unit


async def _for_change(uow: UnitOfWork, code: str, if_match: int | None):
    """The unit's row, once the directory is locked and the caller is known to have read its current version."""
    if if_match is None:
        raise PreconditionRequired("send If-Match with the unit's ETag to change it", field="If-Match")
    await repository.lock(uow.session)
    row = await _row(uow, code)
    if row["version"] != if_match:
        raise PreconditionFailed(f"the unit changed since it was read (now version {row['version']}); read it again",
                                 field="If-Match")
    return row


async def _change(uow: UnitOfWork, row, new: Unit) -> UnitOut:
    """Replace the unit of `row` (None: none yet) by `new`, and commit."""
    change = change_of(None if row is None else repository.unit_from_row(row), new)
    if change is None:
        return _out(row)
    await _save(uow, [(new, change)])
    out = _out(await _row(uow, new.code))
    await uow.commit()
    return out


async def create(uow: UnitOfWork, body: UnitIn) -> UnitOut:
    """A new unit; its id is derived from its code, like the seed directory's."""
    await repository.lock(uow.session)
    unit = await _from_body(uow, body, body.code, uuid.uuid5(NAMESPACE, body.code))
    taken = (await uow.session.execute(select(agency_units.c.code).where(
        or_(agency_units.c.code == unit.code, agency_units.c.id == unit.id)))).scalars().first()
    if taken is not None:  # the id can only be taken by an imported unit that chose it
        raise Conflict(f"the directory already has a unit {unit.code}" if taken == unit.code else
                       f"the id of code {unit.code} is taken by unit {taken}; choose another code", field="code")
    return await _change(uow, None, unit)


async def replace_unit(uow: UnitOfWork, code: str, if_match: int | None, body: UnitFields) -> UnitOut:
    """Every field but the code and id replaced."""
    row = await _for_change(uow, code, if_match)
    return await _change(uow, row, await _from_body(uow, body, code, row["id"]))


async def set_status(uow: UnitOfWork, code: str, if_match: int | None, status: UnitStatus) -> UnitOut:
    row = await _for_change(uow, code, if_match)
    return await _change(uow, row, replace(repository.unit_from_row(row), status=status))


async def verify(uow: UnitOfWork, code: str, if_match: int | None, today: date | None = None) -> UnitOut:
    """Its data was checked with the unit today (Asia/Ho_Chi_Minh)."""
    row = await _for_change(uow, code, if_match)
    return await _change(uow, row, replace(repository.unit_from_row(row), last_verified=today or local_today()))


async def import_units(uow: UnitOfWork, text: str, fmt: Format, dry_run: bool) -> ImportOut:
    """All or nothing: any problem in the file refuses all of it, listing every problem with its row."""
    if not dry_run:
        await repository.lock(uow.session)
    current = {u.code: u for u in await repository.all_units(uow.session)}
    parse = codec.parse_csv_numbered if fmt is Format.csv else codec.parse_yaml_numbered
    try:
        # Parents may name units already in the directory. Off the event loop, like export.
        numbered = await asyncio.to_thread(parse, text, frozenset(current))
    except DirectoryImportError as exc:
        raise _refused(exc.errors) from None
    code_of_id = {u.id: u.code for u in current.values()}
    errors: list[RowError] = []
    changes: list[tuple[int, Unit, DirectoryChange]] = []
    for row, unit in numbered:
        old, owner = current.get(unit.code), code_of_id.get(unit.id)
        if old is not None and old.id != unit.id:  # referrals name units by id: it never changes
            errors.append(RowError(row, "id", f"unit {unit.code} has id {old.id} in the directory; an import "
                                              "cannot change a unit's id"))
        elif old is None and owner is not None:
            errors.append(RowError(row, "id", f"id {unit.id} belongs to unit {owner} in the directory"))
        elif (change := change_of(old, unit)) is not None:
            changes.append((row, unit, change))
    if errors:
        raise _refused(errors)
    if changes and not dry_run:
        await _save(uow, [(unit, change) for _, unit, change in changes])
        await uow.commit()
    created = sum(change is DirectoryChange.created for *_, change in changes)
    return ImportOut(dry_run=dry_run, created=created, updated=len(changes) - created,
                     unchanged=len(numbered) - len(changes),
                     changes=[ImportedUnit(row=row, code=unit.code, change=change) for row, unit, change in changes])


def _refused(errors: list[RowError]) -> DomainError:
    return DomainError(f"{len(errors)} problem(s) in the file; nothing was imported",
                       errors=_problems(errors, rows=True))
