"""The default templates (defaults.yaml) as version 1 of every kind × channel × language that has none."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from runtime.logging import get_logger
from services.notify.templates import repository

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")
SYSTEM = "system:defaults"
RETRY_S = 2.0
log = get_logger(__name__)


@dataclass(frozen=True)
class Default:
    kind: str
    channel: str
    language: str
    subject: str
    body: str


@cache
def defaults(path: Path = DEFAULTS_FILE) -> tuple[Default, ...]:
    tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(Default(kind, channel, language, (t.get("subject") or "").strip(), t["body"])
                 for kind, channels in tree.items() for channel, languages in channels.items()
                 for language, t in languages.items())


async def ensure_defaults(session: AsyncSession) -> int:
    """Insert version 1 of each default that has no version yet; how many were inserted. Idempotent and safe
    when several replicas start at once (ON CONFLICT DO NOTHING on uq_template_version). The caller commits."""
    return await repository.insert_first_versions(session, [
        {"kind": d.kind, "channel": d.channel, "language": d.language, "subject": d.subject, "body": d.body}
        for d in defaults()], created_by=SYSTEM)


def defaults_worker(sessions: async_sessionmaker) -> Callable[[asyncio.Event], Awaitable[None]]:
    """A ServiceRuntime worker that seeds the defaults once at start, retrying while the database is away."""
    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with sessions() as session:
                    inserted = await ensure_defaults(session)
                    await session.commit()
                log.info("template_defaults_seeded", inserted=inserted)
                return
            except Exception as exc:  # noqa: BLE001 - database not reachable yet: try again shortly
                log.warning("template_defaults_failed", error=type(exc).__name__)
                try:
                    await asyncio.wait_for(stop.wait(), RETRY_S)
                except TimeoutError:
                    pass
    return run
