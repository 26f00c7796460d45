"""Helpers shared by `python -m bench` and `python -m bench intake`."""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import uvloop

from bench import report
from devstack.stack import Ports, Stack

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def check_local() -> None:
    """Load goes to this machine only: refuse an external DATABASE_URL or broker elsewhere."""
    hosts = []
    if url := os.environ.get("DATABASE_URL"):
        hosts.append(urlsplit(url).hostname)
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        hosts += [urlsplit(f"//{s.strip()}").hostname for s in servers.split(",")]
    if bad := [h for h in hosts if h not in LOOPBACK]:
        sys.exit(f"bench: refusing to load non-local hosts {bad}; unset DATABASE_URL/KAFKA_BOOTSTRAP_SERVERS")


@contextmanager
def fresh_stack() -> Iterator[tuple[Stack, Path]]:
    """A stack in a temporary directory: durable PostgreSQL and a fresh broker (it slows down as it
    retains messages). Stopped whatever happens; after a failure the service logs are kept in
    bench/results/last-failure-logs. Yields the stack (not started: each benchmark starts what it
    measures) and its log directory."""
    with tempfile.TemporaryDirectory(prefix="hotline-bench-", ignore_cleanup_errors=True) as tmp:
        logs = Path(tmp) / "logs"
        stack = Stack(data_dir=Path(tmp) / "pg", ports=Ports.free(), fast=False, log_dir=logs, ready_timeout=120)
        try:
            yield stack, logs
        except Exception:
            say(f"failed; service logs copied to {report.RESULTS_DIR / 'last-failure-logs'}")
            if logs.exists():
                shutil.copytree(logs, report.RESULTS_DIR / "last-failure-logs", dirs_exist_ok=True)
            raise
        finally:
            stack.stop()


def run(coro):
    """Run the load client on uvloop, as the services are: the client shares the two cores with
    what it measures, so every millisecond it spends is one the server does not get."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def fetchval(dsn: str, sql: str):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def pg_counters(dsn: str) -> tuple[int, int | None]:
    """(transactions committed, WAL fsyncs) so far. Backends publish their counters about once a
    second when idle, so wait for the last ones first."""
    await asyncio.sleep(2)
    xacts = await fetchval(dsn, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    try:  # pg_stat_io exists from PostgreSQL 16
        fsyncs = await fetchval(dsn, "SELECT sum(fsyncs)::bigint FROM pg_stat_io WHERE object = 'wal'")
    except asyncpg.PostgresError:
        fsyncs = None
    return xacts, fsyncs


def new_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_pgbench_args(p: argparse.ArgumentParser) -> None:
    """The pgbench ceiling's options, as every bench takes them."""
    p.add_argument("--pgbench-clients", type=ints, help="pgbench clients, comma-separated (1,8)")
    p.add_argument("--pgbench-seconds", type=int, help="seconds per pgbench run (default 8)")


def ints(text: str) -> tuple[int, ...]:
    """An argparse type: "1,8,32" → (1, 8, 32)."""
    return tuple(int(x) for x in text.split(","))


def floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def apply_profiles(args, profiles: dict) -> None:
    """Fill each option left unset with its --quick or default value: `profiles[name] = (quick, default)`."""
    for name, (quick, default) in profiles.items():
        if getattr(args, name, None) is None:
            setattr(args, name, quick if args.quick else default)
