"""Ceilings measured on the same machine, server and broker as the pipeline, in the same run."""
from __future__ import annotations

import asyncio
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import load
from bench.e2e import report_body
from bench.stats import rate, summary_ms
from devstack.postgres import pgbench_path
from devstack.procs import free_port, spawn, terminate, wait_http

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRATCH = """
CREATE SCHEMA IF NOT EXISTS bench;
DROP TABLE IF EXISTS bench.pgbench_insert, bench.minimal_insert;
CREATE TABLE bench.pgbench_insert (id bigserial PRIMARY KEY, payload text NOT NULL,
                                   created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE bench.minimal_insert (id bigserial PRIMARY KEY, province_code text NOT NULL, channel text NOT NULL,
                                   created_at timestamptz NOT NULL DEFAULT now());
"""


async def _sql(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_scratch(dsn: str) -> None:
    await _sql(dsn, SCRATCH)


async def drop_scratch(dsn: str) -> None:
    await _sql(dsn, "DROP SCHEMA IF EXISTS bench CASCADE")


# -- PostgreSQL --------------------------------------------------------------------------------
def pgbench(dsn: str, clients: int, seconds: int) -> dict:
    """Single-row INSERT commits/s: every transaction is one INSERT and one durable commit."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "insert.sql"
        script.write_text("INSERT INTO bench.pgbench_insert (payload) VALUES ('report');\n")
        # -n: no vacuum of pgbench's own tables; -M prepared: asyncpg prepares its statements too.
        # pgbench wants clients to be a multiple of threads, hence min(2, clients).
        argv = [str(pgbench_path()), "-n", "-M", "prepared", "-f", str(script), "-c", str(clients),
                "-j", str(min(2, clients)), "-T", str(seconds), dsn]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    tps = re.search(r"^tps = ([\d.]+)", done.stdout, re.M)
    avg = re.search(r"^latency average = ([\d.]+) ms", done.stdout, re.M)
    return {
        "clients": clients,
        "seconds": seconds,
        "commits_per_s": round(float(tps.group(1)), 1) if tps else None,
        "latency_avg_ms": float(avg.group(1)) if avg else None,
    }


# -- FastAPI + asyncpg ---------------------------------------------------------------------------
async def minimal_api(dsn: str, requests: int, concurrency: int, log_dir: Path) -> dict:
    """The minimal endpoint under the same closed-loop client as intake."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.minimal_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--no-access-log", "--log-level", "warning"]
    env = dict(os.environ, BENCH_DSN=dsn, PYTHONUNBUFFERED="1")
    with open(log_dir / "minimal_app.log", "ab") as log:
        proc = spawn(argv, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/healthz", 30, proc, "minimal_app")
        base = f"http://127.0.0.1:{port}"
        async with load.Clients() as clients:
            await load.closed_loop(clients, f"{base}/reports", report_body(), min(200, requests), concurrency)  # warm
            noop = await load.closed_loop(clients, f"{base}/noop", report_body(), requests, concurrency)
            run = await load.closed_loop(clients, f"{base}/reports", report_body(), requests, concurrency)
    finally:
        terminate(proc)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "ok": len(run.ok),
        "errors": run.errors(),
        "noop_errors": noop.errors(),
        "rate_per_s": rate(len(run.ok), run.elapsed_s),
        "http_latency": summary_ms([s.latency_s for s in run.ok]),
        "noop_rate_per_s": rate(len(noop.ok), noop.elapsed_s),
        "noop_http_latency": summary_ms([s.latency_s for s in noop.ok]),
    }


# -- Kafka -------------------------------------------------------------------------------------
def _producer(bootstrap: str) -> AIOKafkaProducer:
    # The relay's settings (runtime.kafka.new_producer), so the ceiling applies to the relay.
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=1)


async def consume_all(consumer: AIOKafkaConsumer, count: int, stall_s: float = 60) -> float:
    """Seconds to read `count` records from the consumer's assigned partitions (positioned already)."""
    got, started = 0, time.perf_counter()
    while got < count:
        batches = await consumer.getmany(timeout_ms=1000)
        if not batches and time.perf_counter() - started > stall_s:
            raise TimeoutError(f"consumed only {got} of {count} records")
        got += sum(len(records) for records in batches.values())
    return time.perf_counter() - started


async def _consumer(bootstrap: str, tp: TopicPartition) -> AIOKafkaConsumer:
    # No group: manual assignment skips the broker's slow (5-18 s) group join.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=10, auto_offset_reset="earliest")
    consumer.assign([tp])
    await consumer.start()
    return consumer


async def kafka(bootstrap: str, messages: int, latency_rate: float, latency_seconds: float,
                size: int = 300) -> dict:
    """Raw produce and consume throughput, then produce->consume latency at a modest fixed rate."""
    bulk, timed = (f"bench.raw.{uuid.uuid4().hex[:8]}.{what}" for what in ("bulk", "timed"))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in (bulk, timed)])
        result = await _throughput(bootstrap, TopicPartition(bulk, 0), messages, size)
        result |= await _latency(bootstrap, TopicPartition(timed, 0), latency_rate, latency_seconds, size)
    finally:
        try:  # the broker keeps everything in memory: give it back
            await admin.delete_topics([bulk, timed])
        finally:
            await admin.close()
    return result


async def _throughput(bootstrap: str, tp: TopicPartition, messages: int, size: int) -> dict:
    payload = os.urandom(size)
    producer = _producer(bootstrap)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(tp.topic, payload, partition=tp.partition) for _ in range(messages)]
        await asyncio.gather(*futures)
        produce_s = time.perf_counter() - started
    finally:
        await producer.stop()
    consumer = await _consumer(bootstrap, tp)
    try:
        await consumer.seek_to_beginning(tp)
        consume_s = await consume_all(consumer, messages)
    finally:
        await consumer.stop()
    return {
        "messages": messages,
        "message_bytes": size,
        "produce_per_s": rate(messages, produce_s),
        "consume_per_s": rate(messages, consume_s),
    }


async def _latency(bootstrap: str, tp: TopicPartition, per_s: float, seconds: float, size: int) -> dict:
    """Open loop: each message carries its scheduled send time; latency counts from that."""
    n = int(per_s * seconds)
    consumer = await _consumer(bootstrap, tp)
    producer = _producer(bootstrap)
    await producer.start()
    e2e: list[float] = []
    acks: list[float] = []

    async def consume() -> None:
        while len(e2e) < n:
            for records in (await consumer.getmany(tp, timeout_ms=200)).values():
                now = time.perf_counter()
                e2e.extend(now - struct.unpack_from("d", r.value)[0] for r in records)

    try:
        await consumer.seek_to_end(tp)
        await consumer.position(tp)  # resolved before the first send
        reader = asyncio.create_task(consume())
        start = time.perf_counter() + 0.05
        for i in range(n):
            due = start + i / per_s
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            fut = await producer.send(tp.topic, struct.pack("d", due).ljust(size, b"\0"), partition=tp.partition)
            fut.add_done_callback(lambda _f, due=due: acks.append(time.perf_counter() - due))
        try:
            await asyncio.wait_for(reader, 30)
        except TimeoutError:
            pass
    finally:
        await producer.stop()
        await consumer.stop()
    return {
        "latency_rate_per_s": per_s,
        "latency_messages": n,
        "latency_received": len(e2e),
        "produce_ack_latency": summary_ms(acks),
        "produce_consume_latency": summary_ms(e2e),
    }
