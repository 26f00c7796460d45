"""Where the projections stand, and which generation of them a consumer feeds.

A rebuild (services/reporting/rebuild.py) empties the projections and bumps the generation in one
transaction. A consumer checks the generation first in each of its transactions, under a share lock the
rebuild must wait for, so no event is ever applied to the emptied tables by a consumer of the old
generation. It then rejoins as the new generation's consumer group, which has no committed offsets and so
reads every topic from the beginning.
"""
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from runtime.consumer import Rejoin
from runtime.uow import UnitOfWork
from services.reporting.models import positions, projection_state

p = positions.c


async def current_generation(uow: UnitOfWork, *, lock: bool = False) -> int:
    query = select(projection_state.c.generation).where(projection_state.c.id == 1)
    return await uow.session.scalar(query.with_for_update(read=True) if lock else query)


class ProjectionCheckpoint:
    def __init__(self, uow_factory: Callable[[], UnitOfWork]):
        self._uow_factory = uow_factory
        self._generation: int | None = None

    async def group(self, name: str) -> str:
        async with self._uow_factory() as uow:
            self._generation = await current_generation(uow)
        return f"{name}.g{self._generation}"

    async def begin(self, uow: UnitOfWork) -> None:
        if await current_generation(uow, lock=True) != self._generation:
            raise Rejoin()

    async def advance(self, uow: UnitOfWork, topic: str, partition: int, next_offset: int,
                      event_time: datetime | None) -> None:
        await uow.session.execute(
            insert(positions).values(topic=topic, partition=partition, next_offset=next_offset, event_time=event_time)
            .on_conflict_do_update(index_elements=[p.topic, p.partition], set_={
                "next_offset": func.greatest(p.next_offset, next_offset),
                "event_time": func.coalesce(event_time, p.event_time), "applied_at": func.now()}))
