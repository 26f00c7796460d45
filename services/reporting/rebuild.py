"""`python -m services.reporting rebuild`: empty every projection and replay every topic from the start.

One transaction empties the projections, the inbox and the positions, and bumps the generation (see
projections/checkpoint.py). The running reporting processes notice on their next transaction, rejoin as
the new generation's consumer group and replay; until they catch up, every answer says `rebuilding`.
The command then waits, printing the lag, until the projections are level with the broker again.
"""
import asyncio
import getpass
import sys
import time

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from runtime.db import create_engine
from services.reporting.models import PROJECTIONS, SCHEMA, inbox, projection_state
from services.reporting.projections import topics
from services.reporting.settings import ReportingSettings
from services.reporting.stats.lag import EndOffsets, projection_lag


async def request_rebuild(engine: AsyncEngine, requested_by: str) -> int:
    """Empty the projections and start a new generation; returns it."""
    async with engine.begin() as conn:
        # The update lock waits for every consumer transaction in flight (they hold a share lock on the row).
        await conn.execute(select(projection_state.c.generation).with_for_update())
        names = ", ".join(f"{SCHEMA}.{t.name}" for t in (*PROJECTIONS, inbox))
        await conn.execute(text(f"TRUNCATE {names}"))
        return await conn.scalar(update(projection_state).values(
            generation=projection_state.c.generation + 1, rebuild_started_at=text("now()"),
            rebuild_requested_by=requested_by[:100]).returning(projection_state.c.generation))


async def wait_caught_up(engine: AsyncEngine, ends: EndOffsets, timeout_s: float, progress=None) -> float:
    """Seconds until the projections hold every event on the broker; TimeoutError after `timeout_s`."""
    started = time.monotonic()
    while True:
        async with AsyncSession(engine) as session:
            lag = await projection_lag(session, ends)
        if progress:
            progress(lag)
        if lag.events_behind == 0:
            async with engine.begin() as conn:
                await conn.execute(update(projection_state).values(rebuild_started_at=None))
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"still {lag.events_behind} events behind after {timeout_s:.0f} s")
        await asyncio.sleep(1.0)


async def _rebuild(settings: ReportingSettings) -> None:
    engine = create_engine(settings.database_url, 2)
    ends = EndOffsets(settings.kafka, topics(), 0)
    try:
        generation = await request_rebuild(engine, f"cli:{getpass.getuser()}")
        print(f"reporting: projections emptied; generation {generation} replays every topic", file=sys.stderr)
        took = await wait_caught_up(engine, ends, float("inf"), lambda lag: print(
            f"  {lag.events_behind if lag.events_behind is not None else '?'} events behind", file=sys.stderr))
        print(f"reporting: rebuilt in {took:.1f} s", file=sys.stderr)
    finally:
        await ends.close()
        await engine.dispose()


def rebuild(settings: ReportingSettings) -> None:
    asyncio.run(_rebuild(settings))
