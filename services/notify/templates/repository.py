"""Templates in notify's database, and in memory for sending.

Templates are only ever added (a change is a new version), so the row count and the newest creation time
say whether anything changed: a process keeps the versions in force in memory and reloads them when that
pair moves, which costs sending one tiny query instead of one per message.
"""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal, select
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.models import templates
from services.notify.templates.words import DEFAULT_LANGUAGE

t = templates.c
Key = tuple[str, str, str]  # kind, channel, language
INSERT_ATTEMPTS = 5  # a new version races another only while both are being saved: a retry or two at most


@dataclass(frozen=True)
class TemplateRow:
    id: uuid.UUID
    kind: str
    channel: str
    language: str
    version: int
    subject: str
    body: str
    created_at: datetime
    created_by: str


class NoTemplate(LookupError):
    """Neither the language asked for nor the Vietnamese fallback has a template of the kind and channel."""


class VersionRace(RuntimeError):
    """Other versions kept being saved at the same moment; nothing was saved."""


def _row(r) -> TemplateRow:
    return TemplateRow(**{name: r[name] for name in TemplateRow.__dataclass_fields__})


def _filtered(query, kind: str | None, channel: str | None, language: str | None):
    for column, value in ((t.kind, kind), (t.channel, channel), (t.language, language)):
        if value is not None:
            query = query.where(column == value)
    return query


async def latest(session: AsyncSession, kind: str | None = None, channel: str | None = None,
                 language: str | None = None) -> list[TemplateRow]:
    """The version in force of each kind × channel × language (matching the filters)."""
    query = (select(templates).ext(distinct_on(t.kind, t.channel, t.language))
             .order_by(t.kind, t.channel, t.language, t.version.desc()))
    return [_row(r) for r in (await session.execute(_filtered(query, kind, channel, language))).mappings()]


async def all_versions(session: AsyncSession, kind: str | None = None, channel: str | None = None,
                       language: str | None = None) -> list[TemplateRow]:
    query = select(templates).order_by(t.kind, t.channel, t.language, t.version.desc())
    return [_row(r) for r in (await session.execute(_filtered(query, kind, channel, language))).mappings()]


async def get(session: AsyncSession, kind: str, channel: str, language: str,
              version: int | None = None) -> TemplateRow | None:
    """One version; None: the one in force."""
    query = select(templates).where(t.kind == kind, t.channel == channel, t.language == language)
    query = query.where(t.version == version) if version is not None else query.order_by(t.version.desc())
    row = (await session.execute(query.limit(1))).mappings().first()
    return None if row is None else _row(row)


async def insert_next(session: AsyncSession, kind: str, channel: str, language: str, subject: str, body: str,
                      created_by: str) -> TemplateRow:
    """A new version, one above the latest (the caller commits). Two saves at once both read the same latest;
    the unique constraint lets one in and the other, finding nothing inserted, reads again and retries. In
    READ COMMITTED each statement sees what committed before it, so the retry sees the winner's version."""
    key = (t.kind == kind, t.channel == channel, t.language == language)
    next_version = select(func.coalesce(func.max(t.version), 0) + 1).where(*key).scalar_subquery()
    for _ in range(INSERT_ATTEMPTS):
        values = select(literal(uuid.uuid4()), literal(kind), literal(channel), literal(language), next_version,
                        literal(subject), literal(body), literal(created_by))
        stmt = (insert(templates)
                .from_select(["id", "kind", "channel", "language", "version", "subject", "body", "created_by"], values)
                .on_conflict_do_nothing(constraint="uq_template_version").returning(*templates.c))
        row = (await session.execute(stmt)).mappings().first()
        if row is not None:
            return _row(row)
    raise VersionRace(f"{kind}/{channel}/{language}: other versions were being saved at the same time")


async def insert_first_versions(session: AsyncSession, rows: list[dict], created_by: str) -> int:
    """Version 1 of each of `rows` that has none yet; how many were inserted (the caller commits)."""
    if not rows:
        return 0
    # One statement in a fixed order: concurrent starts wait on each other's rows, never deadlock.
    values = [r | {"id": uuid.uuid4(), "version": 1, "created_by": created_by}
              for r in sorted(rows, key=lambda r: (r["kind"], r["channel"], r["language"]))]
    done = await session.execute(insert(templates).values(values)
                                 .on_conflict_do_nothing(constraint="uq_template_version").returning(t.id))
    return len(done.all())


async def stamp(session: AsyncSession) -> tuple[int, datetime | None]:
    """What changes whenever a template is added."""
    return tuple((await session.execute(select(func.count(), func.max(t.created_at)).select_from(templates))).one())


class TemplateBook:
    """The templates in force as of the last stamp seen; reloaded (once, even under concurrent callers)
    when a template was added, by this process or another."""

    def __init__(self) -> None:
        self._stamp: tuple[int, datetime | None] | None = None
        self._latest: dict[Key, TemplateRow] = {}
        self._lock = asyncio.Lock()

    async def _current(self, session: AsyncSession) -> dict[Key, TemplateRow]:
        now = await stamp(session)
        if now != self._stamp:
            async with self._lock:
                if now != self._stamp:
                    rows = await latest(session)
                    self._latest, self._stamp = {(r.kind, r.channel, r.language): r for r in rows}, now
        return self._latest

    async def current(self, session: AsyncSession, kind: str, channel: str, language: str) -> TemplateRow:
        """The template in force in `language`, else in Vietnamese; render it with a context in the row's
        language. Raises NoTemplate when neither exists."""
        found = await self._current(session)
        for lang in dict.fromkeys((language, DEFAULT_LANGUAGE)):
            if (row := found.get((kind, channel, lang))) is not None:
                return row
        raise NoTemplate(f"no {channel} template of {kind} in {language!r} nor in {DEFAULT_LANGUAGE!r}: seed the "
                         "defaults (services.notify.templates.seed.ensure_defaults) or save one with "
                         f"POST /templates/{kind}/{channel}/{DEFAULT_LANGUAGE}")
