"""List and replay dead letters.

    python -m runtime.dlq_cli list intake.cases.v1.dlq
    python -m runtime.dlq_cli replay intake.cases.v1.dlq --partition 0 --offset 3
    python -m runtime.dlq_cli replay intake.cases.v1.dlq --all

Replay sends the original record (key, value, headers) back to its origin topic. `--all` replays
only letters not replayed before: progress is kept as the offsets of consumer group `dlq-replay`. A letter
whose record was too large to copy (header `dlq_value_dropped`, its size) has no value to send back: it is
listed but not replayed. The record itself stays on the origin topic, at the partition and offset the letter
names, until the topic's retention removes it.
"""
import argparse
import asyncio
import json
import sys
from dataclasses import replace

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from runtime.dlq import DLQ_HEADERS, H_TOPIC, H_VALUE_DROPPED
from runtime.kafka import KafkaAccess, client_args, new_producer
from runtime.settings import ServiceSettings

REPLAY_GROUP = "dlq-replay"


async def read_all(bootstrap: KafkaAccess | str, topic: str, group: str | None = None) -> list:
    """Every record now in `topic` (from the group's committed offsets if a group is given)."""
    consumer = AIOKafkaConsumer(**client_args(bootstrap), group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise SystemExit(f"no such topic: {topic}")
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        if group is None:
            await consumer.seek_to_beginning(*partitions)
        records = []
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                records += [r for r in batch.get(tp, []) if r.offset < ends[tp]]
        return records
    finally:
        await consumer.stop()


def describe(record) -> dict:
    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
    return {
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode(errors="replace") if record.key else None,
        "type": headers.get("ce_type"),
        "id": headers.get("ce_id"),
        **{k: headers[k] for k in DLQ_HEADERS if k in headers},
    }


async def replay(bootstrap: KafkaAccess | str, topic: str, partition: int | None, offset: int | None) -> list[dict]:
    everything = partition is None
    records = await read_all(bootstrap, topic, REPLAY_GROUP if everything else None)
    if not everything:
        records = [r for r in records if r.partition == partition and r.offset == offset]
        if not records:
            raise SystemExit(f"no dead letter at {topic}[{partition}]@{offset}")
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        for r in records:
            origin = dict(r.headers)[H_TOPIC].decode()
            if H_VALUE_DROPPED in dict(r.headers):
                continue  # no value to send back: listed, and left to the operator (see the module docstring)
            headers = [(k, v) for k, v in r.headers if k not in DLQ_HEADERS]
            await producer.send_and_wait(origin, value=r.value, key=r.key, headers=headers)
    finally:
        await producer.stop()
    if everything and records:
        await _commit_progress(bootstrap, topic, records)
    return [describe(r) for r in records]  # a letter without its value is among them, not replayed


async def _commit_progress(bootstrap: KafkaAccess | str, topic: str, records) -> None:
    last: dict[int, int] = {}
    for r in records:
        last[r.partition] = max(last.get(r.partition, -1), r.offset)
    consumer = AIOKafkaConsumer(**client_args(bootstrap), group_id=REPLAY_GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in last])
        await consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o + 1, "") for p, o in last.items()})
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m runtime.dlq_cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("topic", help="a dead-letter topic, e.g. intake.cases.v1.dlq")
    parser.add_argument("--bootstrap", help="brokers, instead of KAFKA_BOOTSTRAP_SERVERS (the KAFKA_* security "
                                            "settings still apply)")
    parser.add_argument("--partition", type=int)
    parser.add_argument("--offset", type=int)
    parser.add_argument("--all", action="store_true", help="replay every letter not replayed before")
    args = parser.parse_args(argv)
    if not args.topic.endswith(".dlq"):
        parser.error("topic must be a dead-letter topic (ending in .dlq)")
    kafka = ServiceSettings().kafka
    access = replace(kafka, bootstrap=args.bootstrap) if args.bootstrap else kafka
    if args.command == "list":
        rows = [describe(r) for r in asyncio.run(read_all(access, args.topic))]
    else:
        if not args.all and (args.partition is None or args.offset is None):
            parser.error("replay needs --partition and --offset, or --all")
        rows = asyncio.run(replay(access, args.topic, None if args.all else args.partition, args.offset))
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    print(f"{len(rows)} dead letter(s) {'listed' if args.command == 'list' else 'replayed'}", file=sys.stderr)


if __name__ == "__main__":
    main()
