"""Outbox relay: publishes committed events in order, marks them sent, and survives broker outages.

One relay per service publishes at a time (a PostgreSQL advisory lock), so per-key order holds
even with several replicas. It wakes on NOTIFY from committing transactions, with a poll as backup.
"""
import asyncio
import json
import time
import zlib

import asyncpg
from opentelemetry.trace import SpanKind

from runtime.cloudevents import Envelope
from runtime.db import asyncpg_dsn, notify_channel
from runtime.kafka import new_producer
from runtime.logging import get_logger
from runtime.metrics import EVENTS_PRODUCED, OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE
from runtime.settings import ServiceSettings
from runtime.tracing import context_from, current_carrier, tracer

log = get_logger(__name__)


class OutboxRelay:
    def __init__(self, service: str, schema: str, settings: ServiceSettings):
        self.service = service
        self._schema = schema
        self._settings = settings
        self._channel = notify_channel(schema)
        self._lock_key = zlib.crc32(f"outbox-relay:{schema}".encode())
        self._wake = asyncio.Event()
        self._producer = None
        self._start_backoff = 0.2
        self.is_leader = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._lead(stop)
            except Exception as exc:  # noqa: BLE001 - database or broker trouble: back off, reconnect
                log.warning("relay_error", error=type(exc).__name__, detail=str(exc)[:200])
                await _sleep(stop, 1.0)
            finally:
                self.is_leader = False
                await self._stop_producer()

    async def _lead(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(self._settings.session_database_url))
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                if await _sleep(stop, 5.0):
                    return
            self.is_leader = True
            await conn.add_listener(self._channel, lambda *_: self._wake.set())
            log.info("relay_leading", service=self.service)
            await self._loop(conn, stop)
        finally:
            await conn.close()  # releases the advisory lock and the listener
            if self.is_leader:  # the next leader reports the backlog; a stale copy here would be summed
                for gauge in (OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE):
                    try:
                        gauge.remove(self.service)
                    except KeyError:
                        pass

    async def _loop(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        last_stats = last_purge = 0.0
        while not stop.is_set():
            self._wake.clear()
            rows = await conn.fetch(
                f"SELECT id, topic, key, type, source, subject, time, payload::text AS payload, trace "
                f"FROM {self._schema}.outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1",
                self._settings.relay_batch_size,
            )
            if rows:
                await self._publish(conn, rows, stop)
            now = time.monotonic()
            if now - last_stats > 1.0:
                await self._record_backlog(conn)
                last_stats = now
            if now - last_purge > 60.0:
                await self._purge(conn)
                last_purge = now
            if len(rows) < self._settings.relay_batch_size:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._settings.relay_poll_interval_s)
                except TimeoutError:
                    pass

    async def _publish(self, conn: asyncpg.Connection, rows, stop: asyncio.Event) -> None:
        if self._producer is None:
            # One try per pass, not a retry loop: the loop goes on recording the backlog while the
            # broker is away, so the outbox alerts see it grow.
            producer = new_producer(self._settings.kafka)
            try:
                await producer.start()
            except Exception as exc:  # noqa: BLE001 - any start failure means: try again later
                log.warning("kafka_start_failed", client="relay", error=type(exc).__name__)
                await _quietly_stop(producer)
                await _sleep(stop, self._start_backoff)
                self._start_backoff = min(self._start_backoff * 2, 5.0)
                return
            self._producer, self._start_backoff = producer, 0.2
        futures = []
        for row in rows:
            carrier = json.loads(row["trace"]) if isinstance(row["trace"], str) else dict(row["trace"])
            with tracer().start_as_current_span(
                f"publish {row['topic']}",
                context=context_from(carrier),
                kind=SpanKind.PRODUCER,
                attributes={"messaging.system": "kafka", "messaging.destination.name": row["topic"]},
            ):
                headers = Envelope(
                    id=row["id"],
                    source=row["source"],
                    type=row["type"],
                    time=row["time"],
                    subject=row["subject"],
                    data=b"",
                    extensions=current_carrier(),  # this publish span, child of the request's
                ).headers()
                futures.append(
                    await self._producer.send(
                        row["topic"], value=row["payload"].encode(), key=row["key"].encode(), headers=headers
                    )
                )
        results = await asyncio.gather(*futures, return_exceptions=True)
        sent = []
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                break  # keep order: everything after the first failure is retried
            sent.append(row["id"])
            EVENTS_PRODUCED.labels(row["type"]).inc()
        if sent:
            await conn.execute(
                f"UPDATE {self._schema}.outbox SET published_at = now() WHERE id = ANY($1::uuid[])", sent
            )
        if len(sent) < len(rows):
            failure = results[len(sent)]
            log.warning("relay_publish_failed", error=type(failure).__name__, pending=len(rows) - len(sent))
            await self._stop_producer()  # a fresh producer drops anything queued behind the failure
            await _sleep(stop, 1.0)

    async def _record_backlog(self, conn: asyncpg.Connection) -> None:
        count, age = await conn.fetchrow(
            f"SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) "
            f"FROM {self._schema}.outbox WHERE published_at IS NULL"
        )
        OUTBOX_BACKLOG.labels(self.service).set(count)
        OUTBOX_OLDEST_AGE.labels(self.service).set(float(age))

    async def _purge(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"DELETE FROM {self._schema}.outbox WHERE published_at < now() - make_interval(hours => $1)",
            self._settings.outbox_retention_hours,
        )

    async def _stop_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await _quietly_stop(producer)


async def _quietly_stop(producer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 5)
    except Exception:  # noqa: BLE001
        pass


async def _sleep(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep unless asked to stop; True if stopping."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except TimeoutError:
        return False
