"""The outbox relay on the real broker: order per key, trace headers, and a broker outage."""
import asyncio
import json
import os
import signal
import uuid
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, insert, select, text

from devstack.procs import free_port
from runtime.db import notify_channel
from runtime.relay import OutboxRelay
from tests.runtime.scratch import make_scratch
from tests.support import create_topics, eventually, read_topic, unique


@pytest.fixture
async def scratch(stack):
    s = await make_scratch(stack.database_url, stack.bootstrap)
    yield s
    await s.drop()


async def write_events(scratch, topic: str, keys: list[str], per_key: int) -> dict[uuid.UUID, str]:
    """Outbox rows as a service's transaction writes them, interleaving keys, then NOTIFY.
    Returns event id → the trace id of the request that wrote it."""
    ids = {}
    async with scratch.engine.begin() as conn:
        for i in range(per_key):
            for key in keys:
                event_id, trace_id = uuid.uuid4(), uuid.uuid4().hex
                ids[event_id] = trace_id
                await conn.execute(insert(scratch.outbox).values(
                    id=event_id, topic=topic, key=key, type="vn.hotline111.test.v1", source="/tests",
                    subject=None, time=datetime.now(UTC), payload={"key": key, "i": i},
                    trace={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"},
                ))
        await conn.execute(text("SELECT pg_notify(:c, '')"), {"c": notify_channel(scratch.schema)})
    return ids


async def unpublished(scratch) -> int:
    async with scratch.engine.connect() as conn:
        return await conn.scalar(select(func.count()).where(scratch.outbox.c.published_at.is_(None)))


async def run_relay(scratch):
    stop = asyncio.Event()
    relay = OutboxRelay("test", scratch.schema, scratch.settings)
    return stop, asyncio.create_task(relay.run(stop))


async def test_relay_publishes_in_order_per_key_with_envelope_and_trace(stack, scratch):
    topic = unique("test.relay")
    await create_topics(stack.bootstrap, topic, partitions=3)
    keys = [f"case-{n}" for n in range(5)]
    ids = await write_events(scratch, topic, keys, per_key=10)
    stop, task = await run_relay(scratch)
    try:
        records = await read_topic(stack.bootstrap, topic, len(ids))
        assert await eventually(lambda: _zero(scratch), 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    by_key: dict[str, list[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        headers = {k: v.decode() for k, v in r.headers}
        assert headers["ce_specversion"] == "1.0" and headers["content-type"] == "application/json"
        assert headers["ce_type"] == "vn.hotline111.test.v1" and headers["ce_source"] == "/tests"
        # The publish continues the trace of the transaction that wrote the event.
        assert headers["traceparent"].split("-")[1] == ids[uuid.UUID(headers["ce_id"])]
        by_key.setdefault(r.key.decode(), []).append(json.loads(r.value)["i"])
    assert by_key == {k: list(range(10)) for k in keys}
    assert sorted(uuid.UUID(dict(r.headers)["ce_id"].decode()) for r in records) == sorted(ids)  # once each


async def _zero(scratch) -> bool:
    return await unpublished(scratch) == 0


async def test_events_written_while_broker_is_frozen_go_out_when_it_returns(stack, scratch):
    if stack.infra.broker is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS points at an external broker; this test freezes the local one")
    topic = unique("test.outage")
    await create_topics(stack.bootstrap, topic, partitions=3)
    stop, task = await run_relay(scratch)
    pid = stack.infra.broker.pid
    try:
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGSTOP)
        try:
            ids = await write_events(scratch, topic, ["a", "b", "c"], per_key=5)  # the database still takes work
            await asyncio.sleep(2.0)
            assert await unpublished(scratch) == len(ids)  # nothing could go out
        finally:
            os.kill(pid, signal.SIGCONT)
        records = await read_topic(stack.bootstrap, topic, len(ids), timeout=60)
        assert await eventually(lambda: _zero(scratch), 60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert {uuid.UUID(dict(r.headers)["ce_id"].decode()) for r in records} == set(ids)


async def test_while_no_broker_answers_the_backlog_is_still_reported(stack, scratch):
    """The outbox alerts must see a broker outage: the relay goes on measuring what waits, and a relay
    that stops leading takes its figures with it (the next leader reports them)."""
    nowhere = scratch.settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    stop, relay = asyncio.Event(), OutboxRelay("test-no-broker", scratch.schema, nowhere)
    task = asyncio.create_task(relay.run(stop))

    async def gauge(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"service": "test-no-broker"})

    try:
        ids = await write_events(scratch, "test.nowhere", ["a"], per_key=3)
        assert await eventually(lambda: _equals(gauge("outbox_backlog"), len(ids)), 20)
        first = await gauge("outbox_oldest_unpublished_seconds")
        assert await eventually(lambda: _above(gauge("outbox_oldest_unpublished_seconds"), first), 20)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert await gauge("outbox_backlog") is None, "a relay that stopped leading left its figure behind"


async def _equals(value, expected) -> bool:
    return await value == expected


async def _above(value, floor) -> bool:
    return (await value or 0) > floor
