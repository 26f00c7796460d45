"""How far behind the event stream the projections are: the broker's end offsets minus the positions
recorded with the projections, in the same transactions as the events applied."""
import asyncio
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.kafka import KafkaAccess, client_args
from runtime.logging import get_logger
from services.reporting.models import positions, projection_state

log = get_logger(__name__)


class Lag(BaseModel):
    events_behind: int | None = Field(description="Events on the topics not yet in the figures; null when the "
                                                   "broker cannot be asked.")
    last_event_at: datetime | None = Field(description="Time of the newest event in the figures.")
    checked_at: datetime = Field(description="When this was measured.")
    rebuilding: bool = Field(description="A rebuild is replaying the topics: the figures are incomplete.")


class EndOffsets:
    """The broker's end offset of every partition of `topics`, asked at most every `cache_s` seconds."""

    def __init__(self, access: KafkaAccess | str, topics: list[str], cache_s: float):
        self._access, self._topics, self._cache_s = access, topics, cache_s
        self._client: AIOKafkaConsumer | None = None
        self._value: dict[tuple[str, int], int] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> dict[tuple[str, int], int] | None:
        async with self._lock:
            if self._value is None or time.monotonic() - self._at > self._cache_s:
                self._value = await self._ask()
                self._at = time.monotonic()
            return self._value

    async def _ask(self) -> dict[tuple[str, int], int] | None:
        try:
            if self._client is None:
                client = AIOKafkaConsumer(**client_args(self._access), request_timeout_ms=3000)
                await asyncio.wait_for(client.start(), 3)
                self._client = client
            await asyncio.wait_for(self._client.topics(), 3)
            tps = [TopicPartition(t, p) for t in self._topics for p in sorted(self._client.partitions_for_topic(t) or ())]
            ends = await asyncio.wait_for(self._client.end_offsets(tps), 3)
            return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
        except Exception as exc:  # noqa: BLE001 - the figures are still served, with an unknown lag
            log.warning("lag_unknown", error=type(exc).__name__)
            await self.close()
            return None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.stop()
            except Exception:  # noqa: BLE001
                pass


async def projection_lag(session: AsyncSession, ends: EndOffsets) -> Lag:
    rows = (await session.execute(select(positions.c.topic, positions.c.partition, positions.c.next_offset,
                                         positions.c.event_time))).all()
    rebuild_started = await session.scalar(select(projection_state.c.rebuild_started_at))
    end = await ends.get()
    behind = None
    if end is not None:
        at = {(t, p): n for t, p, n, _ in rows}
        behind = sum(max(offset - at.get(tp, 0), 0) for tp, offset in end.items())
    times = [r.event_time for r in rows if r.event_time is not None]
    return Lag(events_behind=behind, last_event_at=max(times, default=None), checked_at=datetime.now(UTC),
               rebuilding=rebuild_started is not None and behind != 0)
