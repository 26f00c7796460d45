"""Idempotent consumers on the real broker and PostgreSQL: crash windows, poison events, dead letters."""
import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import insert

from runtime import dlq_cli
from runtime.consumer import EventConsumer, Rejoin, _Assignment
from runtime.metrics import CONSUMER_LAG, EVENTS_CONSUMED
from schemas.events.cases import CaseReported
from tests.runtime.scratch import make_scratch
from tests.support import create_topics, envelope_headers, eventually, produce, read_topic, unique


def case_event(case_id: uuid.UUID | None = None) -> CaseReported:
    return CaseReported(
        case_id=case_id or uuid.uuid4(), case_number="111-2026-999999", reported_at=datetime.now(UTC),
        channel="phone", province_code="01", urgency="normal",
    )


def record_of(event: CaseReported, event_id: uuid.UUID | None = None):
    return (str(event.case_id).encode(), event.model_dump_json().encode(), envelope_headers(event, event_id=event_id))


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an Exception, so no handler in the runtime catches it."""


@pytest.fixture
async def scratch(stack):
    s = await make_scratch(stack.database_url, stack.bootstrap)
    yield s
    await s.drop()


@pytest.fixture
async def topic(stack):
    name = unique("test.events")
    await create_topics(stack.bootstrap, name, name + ".dlq", partitions=1)
    return name


def effect_handler(scratch, fail_for: set | None = None):
    async def handle(uow, event):
        await uow.session.execute(insert(scratch.effects).values(case_id=event.payload.case_id))
        if fail_for and event.payload.case_id in fail_for:
            raise RuntimeError("handler failed after writing: the write must roll back")

    return handle


async def run_until(consumer: EventConsumer, condition, timeout: float = 60.0):
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        return await eventually(condition, timeout)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_crash_after_db_commit_before_offset_commit_causes_no_duplicate(stack, scratch, topic):
    group = unique("crash-group")
    first, second = case_event(), case_event()
    await produce(stack.bootstrap, topic, [record_of(first)])

    def crash(_event):
        raise SimulatedCrash

    crashing = EventConsumer(group, [topic], {CaseReported: effect_handler(scratch)}, scratch.uow, scratch.inbox,
                             scratch.settings, after_commit=crash)
    with pytest.raises(SimulatedCrash):
        await asyncio.wait_for(crashing.run(asyncio.Event()), 90)
    assert await scratch.effect_count(first.case_id) == 1  # the transaction committed...

    duplicates = EVENTS_CONSUMED.labels(group, "vn.hotline111.case.reported.v1", "duplicate")
    before = duplicates._value.get()
    await produce(stack.bootstrap, topic, [record_of(second)])
    restarted = EventConsumer(group, [topic], {CaseReported: effect_handler(scratch)}, scratch.uow, scratch.inbox,
                              scratch.settings)

    async def second_applied():
        return await scratch.effect_count(second.case_id) == 1

    await run_until(restarted, second_applied, 90)
    # ...the offset did not, so the event came again, and the inbox turned it away.
    assert duplicates._value.get() == before + 1
    assert await scratch.effect_count(first.case_id) == 1


async def test_poison_events_go_to_dlq_and_the_next_event_is_processed(stack, scratch, topic):
    group = unique("poison-group")
    failing, good = case_event(), case_event()
    key = b"same-key-keeps-order"
    await produce(stack.bootstrap, topic, [
        (key, b"{not json at all", []),  # no CloudEvents headers at all
        (key, json.dumps({"case_id": "not-a-uuid"}).encode(), envelope_headers(good)),
        (key, failing.model_dump_json().encode(), envelope_headers(failing)),
        (key, good.model_dump_json().encode(), envelope_headers(good)),
    ])
    handler = effect_handler(scratch, fail_for={failing.case_id})
    consumer = EventConsumer(group, [topic], {CaseReported: handler}, scratch.uow, scratch.inbox, scratch.settings)

    async def good_applied():
        return await scratch.effect_count(good.case_id) == 1

    await run_until(consumer, good_applied, 90)
    assert await scratch.effect_count(failing.case_id) == 0  # its failed writes were rolled back

    letters = await read_topic(stack.bootstrap, topic + ".dlq", 3)
    rows = [dlq_cli.describe(r) for r in letters]
    assert [r["dlq_reason"] for r in rows] == ["invalid-envelope", "invalid-payload", "processing-failed"]
    assert all(r["dlq_origin_topic"] == topic and r["dlq_consumer"] == group for r in rows)
    assert [int(r["dlq_origin_offset"]) for r in rows] == [0, 1, 2]
    assert rows[2]["dlq_attempts"] == "2" and "RuntimeError" in rows[2]["dlq_error"]
    assert "not-a-uuid" not in rows[1]["dlq_error"]  # errors never echo input values
    assert letters[2].value == failing.model_dump_json().encode()  # the original, untouched


async def test_a_batch_applies_each_event_once_even_with_a_redelivery_and_a_failure_in_it(stack, scratch, topic):
    """Records fetched together are applied in one transaction: a redelivered event inside the batch is
    a duplicate, and a failing one sends the batch down the one-by-one path without losing the others."""
    first, second, failing, last = case_event(), case_event(), case_event(), case_event()
    first_id = uuid.uuid4()
    await produce(stack.bootstrap, topic, [record_of(first, first_id), record_of(second), record_of(first, first_id),
                                           record_of(failing), record_of(last)])
    consumer = EventConsumer(unique("batch-group"), [topic], {CaseReported: effect_handler(scratch, {failing.case_id})},
                             scratch.uow, scratch.inbox, scratch.settings)

    async def last_applied():
        return await scratch.effect_count(last.case_id) == 1

    await run_until(consumer, last_applied, 90)
    assert [await scratch.effect_count(e.case_id) for e in (first, second, failing)] == [1, 1, 0]
    [letter] = await read_topic(stack.bootstrap, topic + ".dlq", 1)
    assert dlq_cli.describe(letter)["dlq_reason"] == "processing-failed"


async def test_replayed_dead_letter_is_processed_once_fixed(stack, scratch, topic):
    group = unique("replay-group")
    event = case_event()
    broken = {event.case_id}
    await produce(stack.bootstrap, topic, [record_of(event)])
    consumer = EventConsumer(group, [topic], {CaseReported: effect_handler(scratch, fail_for=broken)},
                             scratch.uow, scratch.inbox, scratch.settings)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        letters = await read_topic(stack.bootstrap, topic + ".dlq", 1, timeout=90)
        broken.clear()  # the bug is fixed
        replayed = await dlq_cli.replay(stack.bootstrap, topic + ".dlq", None, None)
        assert [r["id"] for r in replayed] == [dlq_cli.describe(letters[0])["id"]]

        async def applied():
            return await scratch.effect_count(event.case_id) == 1

        await eventually(applied, 30)
        # Replaying "all" again finds nothing new: progress is remembered.
        assert await dlq_cli.replay(stack.bootstrap, topic + ".dlq", None, None) == []
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


class MemoryCheckpoint:
    """A projection's checkpoint kept in memory: positions per partition, and a generation to bump."""

    def __init__(self):
        self.generation = 1
        self.joined: list[str] = []
        self.positions: dict[tuple[str, int], int] = {}
        self._joined_generation = None

    async def group(self, name: str) -> str:
        self._joined_generation = self.generation
        self.joined.append(f"{name}.g{self.generation}")
        return self.joined[-1]

    async def begin(self, uow) -> None:
        if self._joined_generation != self.generation:
            raise Rejoin()

    async def advance(self, uow, topic, partition, next_offset, event_time) -> None:
        self.positions[(topic, partition)] = max(self.positions.get((topic, partition), 0), next_offset)


async def test_a_projection_batch_with_a_poison_event_falls_back_to_one_by_one(stack, scratch, topic):
    good, bad, later = case_event(), case_event(), case_event()
    await produce(stack.bootstrap, topic, [record_of(good), record_of(bad), record_of(later),
                                           (b"k", b"not json", envelope_headers(good))])
    checkpoint = MemoryCheckpoint()
    consumer = EventConsumer(unique("projection"), [topic], {CaseReported: effect_handler(scratch, {bad.case_id})},
                             scratch.uow, scratch.inbox, scratch.settings, checkpoint=checkpoint)

    async def settled():
        return checkpoint.positions.get((topic, 0)) == 4

    await run_until(consumer, settled)
    assert [await scratch.effect_count(e.case_id) for e in (good, bad, later)] == [1, 0, 1]
    dead = await read_topic(stack.bootstrap, topic + ".dlq", 2)
    assert sorted(r.value == b"not json" or str(bad.case_id).encode() in r.value for r in dead) == [True, True]


async def test_a_projection_consumer_rejoins_as_a_new_group_when_its_generation_changes(stack, scratch, topic):
    first, second = case_event(), case_event()
    await produce(stack.bootstrap, topic, [record_of(first)])
    checkpoint = MemoryCheckpoint()
    consumer = EventConsumer(unique("projection"), [topic], {CaseReported: effect_handler(scratch)},
                             scratch.uow, scratch.inbox, scratch.settings, checkpoint=checkpoint)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(lambda: _async(checkpoint.positions.get((topic, 0)) == 1), 60)
        async with scratch.engine.begin() as conn:  # what a rebuild does: empty the projection...
            await conn.execute(scratch.effects.delete())
            await conn.execute(scratch.inbox.delete())
        checkpoint.generation = 2  # ...and start a new generation
        # Even on a quiet topic the consumer notices, and the new group reads from the start.
        await eventually(lambda: _has(scratch, first), 90)
        await produce(stack.bootstrap, topic, [record_of(second)])
        await eventually(lambda: _has(scratch, second), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert checkpoint.joined[-1].endswith(".g2") and len({g for g in checkpoint.joined}) == 2


async def _async(value):
    return value


async def _has(scratch, event) -> bool:
    return await scratch.effect_count(event.case_id) == 1


async def test_a_revoked_partition_stops_reporting_lag_from_this_member():
    """After a rebalance another member reports the partition; a series left here would be summed twice."""
    assignment, tp = _Assignment("lag-test"), TopicPartition("intake.cases.v1", 4)
    await assignment.on_partitions_assigned([tp])
    CONSUMER_LAG.labels("lag-test", tp.topic, "4").set(7)
    await assignment.on_partitions_revoked([tp, TopicPartition("intake.cases.v1", 5)])  # 5 never had a series
    assert not assignment.partitions
    assert all(s.labels.get("consumer") != "lag-test" for m in CONSUMER_LAG.collect() for s in m.samples)


async def test_offsets_of_partitions_taken_away_in_a_rebalance_are_not_committed(stack, scratch):
    """A member commits only what it still owns: committing a partition a rebalance gave to another member
    fails in aiokafka, and restarting the consumer for it would only make the group rebalance again."""
    topic = unique("test.rebalanced")
    await create_topics(stack.bootstrap, topic, partitions=2)
    mine, gone = TopicPartition(topic, 0), TopicPartition(topic, 1)
    group = unique("commit-group")
    kafka = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=group, enable_auto_commit=False)
    kafka.assign([mine])  # this member owns partition 0 only
    await kafka.start()
    try:
        consumer = EventConsumer(group, [topic], {}, scratch.uow, scratch.inbox, scratch.settings)
        await consumer._commit(kafka, {mine: 5, gone: 3})  # no IllegalStateError for partition 1
        assert await kafka.committed(mine) == 5
    finally:
        await kafka.stop()
    reader = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=group, enable_auto_commit=False)
    reader.assign([gone])
    await reader.start()
    try:
        assert await reader.committed(gone) is None  # its new owner starts from the group's last commit
    finally:
        await reader.stop()
