"""Helpers for tests that talk to the real stack."""
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from runtime import migrations
from runtime.cloudevents import Envelope
from runtime.db import asyncpg_dsn
from schemas import event_spec_for_model


async def eventually(check: Callable[[], Awaitable], timeout: float = 20.0, interval: float = 0.1):
    """Poll until `check()` returns something truthy; return it, or fail with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


async def create_topics(bootstrap: str, *names: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def envelope_headers(payload, *, event_id: uuid.UUID | None = None) -> list[tuple[str, bytes]]:
    spec = event_spec_for_model(type(payload))
    return Envelope(event_id or uuid.uuid4(), "/tests", spec.type, datetime.now(UTC), None, b"").headers()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, list]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, min_count: int, timeout: float = 30.0) -> list:
    """Every record in `topic` from the start, once at least `min_count` have arrived."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [0])]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        records: list = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
            ends = await consumer.end_offsets(parts)
            if len(records) >= min_count and all([await consumer.position(tp) >= ends[tp] for tp in parts]):
                return records
        raise AssertionError(f"{topic}: {len(records)} records after {timeout}s, wanted {min_count}")
    finally:
        await consumer.stop()


async def own_database(stack, service: str) -> str:
    """A new database on the stack's server with `service`'s migrations applied; its URL. Tests that drive
    a service's handlers themselves use one, so no running service consumes or scans their rows."""
    name = f"{service}_own_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    await asyncio.to_thread(migrations.upgrade, Path(f"services/{service}/migrations"), url, service)
    return url
