"""The directory in referral's database, and in memory for matching.

Every change bumps `directory_state.version` in its own transaction; a process keeps the whole
directory in memory (thousands of units) and reloads it when the version it holds is behind, so
matching a case costs one tiny query instead of a query per rule.
"""
from __future__ import annotations

import asyncio
from datetime import time
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.referral.directory.facts import directory_index
from services.referral.directory.model import (
    Channel,
    Contact,
    DirectoryIndex,
    Level,
    OpeningHours,
    Service,
    Unit,
    UnitKind,
    UnitStatus,
)
from services.referral.models import agency_units, directory_state

_FIELDS = ("id", "code", "name", "kind", "level", "parent_code", "province_code", "commune_code", "region",
           "country", "status", "last_verified", "source")


def unit_row(unit: Unit) -> dict:
    row = {f: getattr(unit, f) for f in _FIELDS}
    return row | {
        "services": sorted(unit.services),
        "languages": sorted(unit.languages),
        "opening_hours": [{"weekday": h.weekday, "opens": h.opens.strftime("%H:%M"),
                           "closes": h.closes.strftime("%H:%M")} for h in unit.opening_hours],
        "contacts": [{"channel": c.channel, "address": c.address, "preference": c.preference,
                      "duty_24_7": c.duty_24_7} for c in unit.contacts],
    }


def unit_from_row(row) -> Unit:
    return Unit(
        **{f: row[f] for f in _FIELDS if f not in ("kind", "level", "status")},
        kind=UnitKind(row["kind"]), level=Level(row["level"]), status=UnitStatus(row["status"]),
        services=frozenset(Service(s) for s in row["services"]), languages=frozenset(row["languages"]),
        opening_hours=tuple(OpeningHours(h["weekday"], time.fromisoformat(h["opens"]), time.fromisoformat(h["closes"]))
                            for h in row["opening_hours"]),
        contacts=tuple(Contact(Channel(c["channel"]), c["address"], c["preference"], c["duty_24_7"])
                       for c in row["contacts"]),
    )


async def version(session: AsyncSession) -> int:
    return await session.scalar(select(directory_state.c.version).where(directory_state.c.id == 1)) or 0


async def bump_version(session: AsyncSession) -> None:
    await session.execute(update(directory_state).where(directory_state.c.id == 1)
                          .values(version=directory_state.c.version + 1))


async def all_units(session: AsyncSession) -> list[Unit]:
    rows = (await session.execute(select(agency_units).order_by(agency_units.c.code))).mappings()
    return [unit_from_row(r) for r in rows]


async def load(session: AsyncSession) -> DirectoryIndex:
    return directory_index(await all_units(session))


async def lock(session: AsyncSession) -> None:
    """Hold off every other directory writer until this transaction ends, so a change is decided
    against the directory it overwrites."""
    await session.execute(select(directory_state.c.version).where(directory_state.c.id == 1).with_for_update())


async def upsert(session: AsyncSession, units: list[Unit], batch: int = 1000) -> int:
    """Insert or replace units by code (the caller commits). A changed unit gets a new version."""
    await save(session, units, batch)
    return len(units)


async def save(session: AsyncSession, units: list[Unit], batch: int = 1000) -> dict[str, int]:
    """Insert or replace units by code, answering each one's new version by code; an existing unit keeps
    its id. Bumps the directory's version (the caller commits)."""
    versions: dict[str, int] = {}
    for start in range(0, len(units), batch):
        stmt = insert(agency_units).values([unit_row(u) for u in units[start:start + batch]])
        changed = {c: stmt.excluded[c] for c in unit_row(units[0]) if c not in ("id", "code")}
        rows = await session.execute(stmt.on_conflict_do_update(
            index_elements=[agency_units.c.code],
            set_=changed | {"version": agency_units.c.version + 1, "updated_at": stmt.excluded.updated_at},
        ).returning(agency_units.c.code, agency_units.c.version))
        versions.update((code, version) for code, version in rows)
    if units:
        await bump_version(session)
    return versions


class DirectoryCache:
    """The directory as of the last version seen; reloaded (once, even under concurrent callers)
    when the database's version moved on."""

    def __init__(self) -> None:
        self._version = -1
        self._index = DirectoryIndex([])
        self._lock = asyncio.Lock()

    async def current(self, session: AsyncSession) -> DirectoryIndex:
        latest = await version(session)
        if latest != self._version:
            async with self._lock:
                if latest != self._version:
                    self._index, self._version = await load(session), latest
        return self._index

    async def unit(self, session: AsyncSession, unit_id: UUID) -> Unit | None:
        """A unit as last seen, without asking the database unless it is new since."""
        found = self._index.by_id.get(unit_id)
        return found if found is not None else (await self.current(session)).by_id.get(unit_id)
