"""Idempotent consumer: inbox row and effect in one transaction, offset committed only after it.

A record that is not a valid event, or fails processing `consumer_max_attempts` times, is sent to
the dead-letter topic and the consumer moves on. So is an event whose type the topic may not carry
(`schemas.catalog.Catalog.unexpected_type`: a foreign type, another major version, a type of another
topic); a type the topic may carry that this consumer does not handle (a newer producer's, during a rolling
upgrade) is ignored and counted. A failure because the database cannot be reached is no
failure of the event: it waits for the database without spending its attempts.

Each fetched batch of a partition is applied in one transaction, up to `consumer_transaction_max_events`
events at a time (falling back to one event per transaction if the batch fails). A projection (reporting) adds a Checkpoint, which also records the
partition's position in that transaction and can fence off a consumer whose projections were reset for
a rebuild.
"""
import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ValidationError
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert

from runtime.cloudevents import EnvelopeError, decode, headers_dict
from runtime.db import database_unreachable
from runtime.dlq import send_to_dlq
from runtime.kafka import new_consumer, new_producer, start_with_retry
from runtime.logging import get_logger
from runtime.metrics import (
    CONSUMER_LAG,
    EVENT_HANDLE_SECONDS,
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
    EVENTS_FAILED,
)
from runtime.settings import ServiceSettings
from runtime.tracing import context_from, tracer
from runtime.uow import UnitOfWork
from schemas import CATALOG, event_spec_for_model

log = get_logger(__name__)
P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class Event(Generic[P]):
    id: UUID
    type: str
    source: str
    subject: str | None
    time: datetime
    key: str | None
    payload: P
    trace: dict[str, str]


Handler = Callable[[UnitOfWork, Event[Any]], Awaitable[None]]


class Rejoin(Exception):
    """The consumer's state was reset under it (a rebuild): drop what is in hand and join again."""


class Checkpoint(Protocol):
    """What a rebuildable projection adds to a consumer (see the module docstring)."""

    async def group(self, name: str) -> str:
        """The consumer group to join now, e.g. one per generation of the projections."""

    async def begin(self, uow: UnitOfWork) -> None:
        """First in every transaction; raises Rejoin if the group joined is no longer current."""

    async def advance(self, uow: UnitOfWork, topic: str, partition: int, next_offset: int,
                      event_time: datetime | None) -> None:
        """Last in every transaction: where the partition now stands."""


@dataclass(frozen=True)
class _Decoded:
    record: ConsumerRecord
    event: Event | None = None  # None: nothing to apply (ignored type, or dead-lettered)
    handler: Handler | None = None


class _Assignment(ConsumerRebalanceListener):
    def __init__(self, consumer: str):
        self.consumer = consumer
        self.partitions: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked):
        self.forget(revoked)

    def forget(self, partitions) -> None:
        """Another member reports them now: a stale lag series here would be summed twice."""
        for tp in list(partitions):
            self.partitions.discard(tp)
            try:
                CONSUMER_LAG.remove(self.consumer, tp.topic, str(tp.partition))
            except KeyError:
                pass

    async def on_partitions_assigned(self, assigned):
        self.partitions |= set(assigned)


class EventConsumer:
    """Consumes `topics` as consumer group `name`, dispatching by CloudEvents type to handlers."""

    def __init__(
        self,
        name: str,
        topics: Iterable[str],
        handlers: dict[type[BaseModel], Handler],
        uow_factory: Callable[[], UnitOfWork],
        inbox: Table,
        settings: ServiceSettings,
        after_commit: Callable[[Event[Any]], None] | None = None,
        checkpoint: Checkpoint | None = None,
    ):
        self.name = name
        self.topics = tuple(topics)
        self._handlers = {event_spec_for_model(m).type: (m, h) for m, h in handlers.items()}
        self._uow_factory = uow_factory
        self._inbox = inbox
        self._settings = settings
        self._after_commit = after_commit  # test seam: simulate a crash between DB and offset commit
        self._checkpoint = checkpoint
        self._assignment = _Assignment(name)
        self._has_been_assigned = False
        self._stop: asyncio.Event | None = None

    @property
    def ready(self) -> bool:
        """True once the group has assigned partitions at least once (joins are slow on some brokers)."""
        return self._has_been_assigned

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        while not stop.is_set():
            try:
                await self._consume(stop)
            except Rejoin:
                log.info("consumer_rejoin", consumer=self.name)
                self._has_been_assigned = False
            except Exception as exc:  # noqa: BLE001 - rejoin from the last committed offset
                log.warning("consumer_restart", consumer=self.name, error=type(exc).__name__, detail=str(exc)[:200])
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except TimeoutError:
                    pass

    async def _consume(self, stop: asyncio.Event) -> None:
        s = self._settings
        group = await self._checkpoint.group(self.name) if self._checkpoint else self.name
        consumer = new_consumer(s.kafka, group, s.kafka_fetch_max_wait_ms)
        consumer.subscribe(self.topics, listener=self._assignment)
        producer = new_producer(s.kafka)
        try:
            if not await start_with_retry(consumer, stop, self.name):
                return
            if not await start_with_retry(producer, stop, f"{self.name}.dlq"):
                return
            last_lag = last_fence = last_commit = 0.0
            # A projection's own positions are its truth and its inbox drops a replay, so its offsets
            # may trail by up to a second: one broker round trip per second instead of one per batch.
            done: dict[TopicPartition, int] = {}
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=1000 if self._checkpoint else 200)
                if self._checkpoint and not batches and time.monotonic() - last_fence > 1.0:
                    await self._check_fence()  # a rebuild on a quiet stream must not wait for an event
                    last_fence = time.monotonic()
                if self._assignment.partitions:
                    self._has_been_assigned = True
                for tp, records in batches.items():
                    step = len(records) if self._checkpoint else s.consumer_transaction_max_events
                    for start in range(0, len(records), step):
                        await self._process_batch(tp, records[start:start + step], producer)
                    # Only now, after every record's transaction (or dead letter), move the offset.
                    done[tp] = records[-1].offset + 1
                    if not self._checkpoint:
                        await self._commit(consumer, done)
                        done = {}
                if done and time.monotonic() - last_commit > 1.0:
                    await self._commit(consumer, done)
                    done, last_commit = {}, time.monotonic()
                if time.monotonic() - last_lag > 5.0:
                    await self._record_lag(consumer)
                    last_lag = time.monotonic()
            if done:
                await self._commit(consumer, done)
        finally:
            await _quietly(consumer.stop())
            await _quietly(producer.stop())
            self._assignment.forget(self._assignment.partitions)  # left the group, whatever the path

    async def _commit(self, consumer, done: dict[TopicPartition, int]) -> None:
        """Commit the offsets of what was applied, for the partitions this member still owns. One that a
        rebalance took away meanwhile is not committed: its new owner starts from the last commit, and the
        inbox (or a projection's positions) drops what it replays. Restarting the consumer for it would only
        make the group rebalance again."""
        owned = {tp: offset for tp, offset in done.items() if tp in consumer.assignment()}
        if not owned:
            return
        try:
            await consumer.commit(owned)
        except (CommitFailedError, IllegalStateError) as exc:  # the group moved on while this member committed
            log.warning("offset_commit_skipped", consumer=self.name, error=type(exc).__name__,
                        partitions=len(owned))

    async def _decode(self, record: ConsumerRecord, producer) -> _Decoded:
        """The record as an event with its handler; a record that is not one is dead-lettered here."""
        try:
            envelope = decode(record.headers, record.value)
        except EnvelopeError as exc:
            await self._dead_letter(producer, record, "unknown", "invalid-envelope", str(exc), 0)
            return _Decoded(record)
        if (unexpected := CATALOG.unexpected_type(record.topic, envelope.type)) is not None:
            # Not a type this topic may carry: a dead letter, not an event to skip (schemas.catalog). Labelled
            # "unknown" so a stream of made-up types cannot grow the metric's label set.
            await self._dead_letter(producer, record, "unknown", "unexpected-type", unexpected, 0)
            return _Decoded(record)
        handler_spec = self._handlers.get(envelope.type)
        if handler_spec is None:  # a type of this topic that this consumer has no use for, or a newer one
            EVENTS_CONSUMED.labels(self.name, envelope.type, "ignored").inc()
            return _Decoded(record)
        model, handler = handler_spec
        try:
            payload = model.model_validate_json(envelope.data)
        except ValidationError as exc:
            await self._dead_letter(producer, record, envelope.type, "invalid-payload", _safe_errors(exc), 0)
            return _Decoded(record)
        event = Event(
            id=envelope.id,
            type=envelope.type,
            source=envelope.source,
            subject=envelope.subject,
            time=envelope.time,
            key=record.key.decode(errors="replace") if record.key else None,
            payload=payload,
            trace=headers_dict(record.headers),
        )
        return _Decoded(record, event, handler)

    def _span(self, record: ConsumerRecord, event: Event):
        return tracer().start_as_current_span(
            f"process {record.topic}",
            context=context_from(event.trace),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.consumer.group.name": self.name,
                "messaging.destination.name": record.topic,
                "messaging.message.id": str(event.id),
            },
        )

    async def _process(self, item: _Decoded, producer) -> None:
        if item.event is None:
            if self._checkpoint:  # nothing to apply, but the position still moves past it
                async with self._uow_factory() as uow:
                    await self._checkpoint.begin(uow)
                    await self._advance(uow, [item])
                    await uow.commit()
            return
        with self._span(item.record, item.event):
            await self._handle_with_retries(producer, item)

    async def _check_fence(self) -> None:
        async with self._uow_factory() as uow:
            await self._checkpoint.begin(uow)

    async def _process_batch(self, tp: TopicPartition, records: list[ConsumerRecord], producer) -> None:
        """The partition's batch in one transaction; if any event fails, each again in its own.

        Under load a fetch brings many events: one commit, one inbox statement and one session for all of them
        instead of one each. A lone event takes the single-event path, which is the same work."""
        items = [await self._decode(record, producer) for record in records]
        if not self._checkpoint and sum(item.event is not None for item in items) <= 1:
            for item in items:
                await self._process(item, producer)
            return
        started = time.perf_counter()
        try:
            async with self._uow_factory() as uow:
                if self._checkpoint:
                    await self._checkpoint.begin(uow)
                fresh = await self._first_seen(uow, [item.event for item in items if item.event is not None])
                outcomes = []
                for item in items:
                    if item.event is None:
                        continue
                    if item.event.id not in fresh:
                        outcomes.append((item.event, "duplicate"))
                        continue
                    fresh.discard(item.event.id)
                    with self._span(item.record, item.event):
                        await item.handler(uow, item.event)
                    outcomes.append((item.event, "processed"))
                if self._checkpoint:
                    await self._advance(uow, items)
                await uow.commit()
        except Rejoin:
            raise
        except Exception as exc:  # noqa: BLE001 - isolate the failing event below
            log.warning("batch_failed", consumer=self.name, topic=tp.topic, partition=tp.partition,
                        events=len(items), error=type(exc).__name__)
            for item in items:
                await self._process(item, producer)
            return
        elapsed = (time.perf_counter() - started) / max(len(outcomes), 1)
        for event, outcome in outcomes:
            EVENT_HANDLE_SECONDS.labels(self.name, event.type).observe(elapsed)
            EVENTS_CONSUMED.labels(self.name, event.type, outcome).inc()
            if self._after_commit is not None:
                self._after_commit(event)

    async def _first_seen(self, uow: UnitOfWork, events: list[Event]) -> set[UUID]:
        """Inbox rows for a whole batch in one statement; the ids not seen before."""
        if not events:
            return set()
        rows = {e.id: {"consumer": self.name, "event_id": e.id, "event_type": e.type} for e in events}
        inserted = await uow.session.scalars(insert(self._inbox).values(list(rows.values()))
                                             .on_conflict_do_nothing().returning(self._inbox.c.event_id))
        return set(inserted)

    async def _advance(self, uow: UnitOfWork, items: list[_Decoded]) -> None:
        last = items[-1]
        times = [i.event.time for i in items if i.event is not None]
        await self._checkpoint.advance(uow, last.record.topic, last.record.partition, last.record.offset + 1,
                                       max(times) if times else None)

    async def _handle_with_retries(self, producer, item: _Decoded) -> None:
        record, event = item.record, item.event
        attempts = self._settings.consumer_max_attempts
        attempt, waits, unreachable_since = 1, 0, None
        while attempt <= attempts:
            started = time.perf_counter()
            try:
                outcome = await self._apply_once(item)
            except Rejoin:
                raise
            except Exception as exc:  # noqa: BLE001 - counted, retried, then dead-lettered
                EVENTS_FAILED.labels(self.name, event.type).inc()
                if database_unreachable(exc):
                    # Nothing wrong with the event: the database is away (a restart, a failover). It waits, as
                    # long as that takes, and spends none of its attempts: a dead letter is for a bad event.
                    unreachable_since = unreachable_since or time.monotonic()
                    log.warning("event_waits_for_database", consumer=self.name, event_id=str(event.id),
                                error=type(exc).__name__, waited_s=round(time.monotonic() - unreachable_since, 1))
                    if self._stop is not None and self._stop.is_set():
                        raise  # stopping: uncommitted, so it is delivered again after the restart
                    await asyncio.sleep(min(self._settings.consumer_retry_backoff_s * 2 ** min(waits, 5), 2.0))
                    waits += 1
                    continue
                log.warning(
                    "event_failed", consumer=self.name, event_id=str(event.id), attempt=attempt,
                    error=type(exc).__name__,
                )
                if attempt == attempts:
                    error = f"{type(exc).__name__}: {str(exc)[:300]}"
                    await self._dead_letter(producer, record, event.type, "processing-failed", error, attempt)
                    if self._checkpoint:
                        await self._process(_Decoded(record), producer)  # move the position past it
                    return
                await asyncio.sleep(self._settings.consumer_retry_backoff_s * 2 ** (attempt - 1))
                attempt += 1
                continue
            EVENT_HANDLE_SECONDS.labels(self.name, event.type).observe(time.perf_counter() - started)
            EVENTS_CONSUMED.labels(self.name, event.type, outcome).inc()
            if self._after_commit is not None:
                self._after_commit(event)
            return

    async def _apply_once(self, item: _Decoded) -> str:
        async with self._uow_factory() as uow:
            if self._checkpoint:
                await self._checkpoint.begin(uow)
            outcome = await self._apply(uow, item)
            if self._checkpoint:
                await self._advance(uow, [item])
            await uow.commit()
            return outcome

    async def _apply(self, uow: UnitOfWork, item: _Decoded) -> str:
        """The event's effect and its inbox row, uncommitted; a duplicate has none."""
        event = item.event
        first_time = await uow.session.scalar(
            insert(self._inbox)
            .values(consumer=self.name, event_id=event.id, event_type=event.type)
            .on_conflict_do_nothing()
            .returning(self._inbox.c.event_id)
        )
        if first_time is None:
            return "duplicate"
        await item.handler(uow, event)
        return "processed"

    async def _dead_letter(self, producer, record, event_type: str, reason: str, error: str, attempts: int):
        await send_to_dlq(producer, record, consumer=self.name, reason=reason, error=error, attempts=attempts)
        EVENTS_DEAD_LETTERED.labels(self.name, record.topic, reason).inc()
        EVENTS_CONSUMED.labels(self.name, event_type, "dead-lettered").inc()
        log.error(
            "event_dead_lettered", consumer=self.name, topic=record.topic, partition=record.partition,
            offset=record.offset, reason=reason,
        )

    async def _record_lag(self, consumer) -> None:
        for tp in list(self._assignment.partitions):
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await asyncio.wait_for(consumer.position(tp), 1.0)
            except Exception:  # noqa: BLE001 - revoked meanwhile, or not fetched yet
                continue
            CONSUMER_LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(high - position, 0))


def _safe_errors(exc: ValidationError) -> str:
    """Validation errors without the offending input values (they might be personal data)."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors(include_input=False)]
    return "; ".join(parts)


async def _quietly(coro) -> None:
    try:
        await asyncio.wait_for(coro, 10)
    except Exception:  # noqa: BLE001
        pass
