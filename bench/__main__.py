"""`python -m bench` (make bench): throughput and latency of the thin slice, beside ceilings measured
in the same run on the same PostgreSQL and broker. See docs/benchmarks.md.

`python -m bench intake [--help]` measures intake alone instead (bench/intake.py), and
`python -m bench matching [--help]` referral matching over the full directory (bench/matching.py), and
`python -m bench deadlines [--help]` the deadline scan over 100,000 open referrals (bench/deadlines.py), and
`python -m bench notify [--help]` notify's SMS and email throughput and emergencies under a backlog (bench/notify.py),
and `python -m bench reporting [--help]` reporting's projections, queries and rebuild (bench/reporting.py).

Starts a fresh stack in a temp dir (DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS, if set, are used
instead but must be on this machine), prints one table and writes bench/results/<UTC>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import ceilings, e2e, machine, report
from bench.common import apply_profiles, check_local, fetchval, fresh_stack, pg_counters, run, say
from devstack.stack import Stack
from runtime.db import asyncpg_dsn

# (quick, default): quick is a smoke run of about a minute and a half.
PROFILES = {
    "reports": (300, 2000),
    "concurrency": (32, 32),
    # 50/s is about this machine's end-to-end capacity: the latency phase would measure a growing
    # queue. 20/s is well under it. Compare with the throughput figure of the same run.
    "rate": (20.0, 20.0),
    "duration": (5.0, 20.0),
    "drain_timeout": (30.0, 60.0),
    "idle_seconds": (2.0, 5.0),
    "pgbench_seconds": (3, 8),
    "pgbench_clients": ((1, 8, 32), (1, 8, 32)),
    "api_requests": (1000, 5000),
    "kafka_messages": (5000, 20000),
    "kafka_rate": (200.0, 200.0),
    "kafka_seconds": (2.0, 5.0),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small N and short durations (smoke run, ~90 s)")
    p.add_argument("--reports", type=int, help="reports sent in the throughput test (default 2000)")
    p.add_argument("--concurrency", type=int, help="requests in flight, closed loop (default 32)")
    p.add_argument("--rate", type=float, help="open-loop reports per second for latency (default 20)")
    p.add_argument("--duration", type=float, help="open-loop seconds (default 20)")
    p.add_argument("--drain-timeout", type=float, help="seconds to wait for the last emails (default 60)")
    p.add_argument("--skip-ceilings", action="store_true", help="only the pipeline figures")
    args = p.parse_args(argv)
    apply_profiles(args, PROFILES)
    return args


async def measure(stack: Stack, args: argparse.Namespace, log_dir: Path) -> dict:
    dsn = asyncpg_dsn(stack.database_url)
    out: dict = {"machine": machine.facts(await fetchval(dsn, "SHOW server_version")), "cpu": {}}
    pids = machine.stack_pids(stack)

    say("warm-up: 20 reports")
    await e2e.warm_up(stack)

    say(f"idle: {args.idle_seconds} s with no load (the consumers' polling, the broker)")
    before = machine.cpu_seconds(pids)
    await asyncio.sleep(args.idle_seconds)
    out["cpu_idle"] = machine.cpu_delta(before, machine.cpu_seconds(pids), args.idle_seconds, 0)

    say(f"throughput: {args.reports} reports, {args.concurrency} in flight")
    pg_before = await pg_counters(dsn)
    before, t0 = machine.cpu_seconds(pids), time.perf_counter()
    out["throughput"] = t = await e2e.throughput(stack, args.reports, args.concurrency, args.drain_timeout)
    out["cpu"]["throughput"] = machine.cpu_delta(before, machine.cpu_seconds(pids), time.perf_counter() - t0,
                                                 t["accepted"])
    # Read-only transactions count too; a WAL fsync is the durable part (group commit shares them).
    pg_after, per = await pg_counters(dsn), max(1, t["accepted"])
    t["pg_transactions_per_report"] = round((pg_after[0] - pg_before[0]) / per, 1)
    t["pg_wal_fsyncs_per_report"] = round((pg_after[1] - pg_before[1]) / per, 1) if pg_after[1] is not None else None
    say(f"  intake {t['intake_rate_per_s']}/s, end-to-end {t['e2e_rate_per_s']}/s")

    say(f"latency: {args.rate}/s for {args.duration} s, open loop")
    before, t0 = machine.cpu_seconds(pids), time.perf_counter()
    out["latency"] = lat = await e2e.latency(stack, args.rate, args.duration, args.drain_timeout, dsn)
    out["cpu"]["latency"] = machine.cpu_delta(before, machine.cpu_seconds(pids), time.perf_counter() - t0,
                                              lat["accepted"])
    say(f"  report->email p50 {lat['e2e_latency']['p50_ms']} ms, p99 {lat['e2e_latency']['p99_ms']} ms")

    if args.skip_ceilings:
        return out
    # Ceilings with the services stopped, so nothing else competes for the two cores.
    if stack.services:
        stack.services.stop()
        stack.services = None
    out["ceilings"] = c = {"pgbench": []}
    await ceilings.create_scratch(dsn)
    try:
        for clients in args.pgbench_clients:
            say(f"ceiling: pgbench 1-row INSERT, -c {clients}, {args.pgbench_seconds} s")
            c["pgbench"].append(ceilings.pgbench(dsn, clients, args.pgbench_seconds))
        say(f"ceiling: minimal FastAPI+asyncpg endpoint, {args.api_requests} requests")
        c["minimal_api"] = await ceilings.minimal_api(dsn, args.api_requests, args.concurrency, log_dir)
    finally:
        await ceilings.drop_scratch(dsn)
    say(f"ceiling: raw aiokafka, {args.kafka_messages} messages, then {args.kafka_rate}/s for {args.kafka_seconds} s")
    c["kafka"] = await ceilings.kafka(stack.bootstrap, args.kafka_messages, args.kafka_rate, args.kafka_seconds)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["intake"]:  # `python -m bench intake`: intake alone, see bench/intake.py
        from bench import intake

        return intake.main(argv[1:])
    if argv[:1] == ["matching"]:  # `python -m bench matching`: referral matching, see bench/matching.py
        from bench import matching

        return matching.main(argv[1:])
    if argv[:1] == ["deadlines"]:  # `python -m bench deadlines`: the deadline scan, see bench/deadlines.py
        from bench import deadlines

        return deadlines.main(argv[1:])
    if argv[:1] == ["notify"]:  # `python -m bench notify`: notify's throughput and emergencies, see bench/notify.py
        from bench import notify

        return notify.main(argv[1:])
    if argv[:1] == ["reporting"]:  # `python -m bench reporting`: projections, queries, rebuild, see bench/reporting.py
        from bench import reporting

        return reporting.main(argv[1:])
    args = parse_args(argv)
    check_local()
    started = datetime.now(UTC)
    try:
        with fresh_stack() as (stack, logs):
            say("starting the stack (durable PostgreSQL, Tansu, SMTP sink, four services)")
            stack.start()
            results = run(measure(stack, args, logs))
    except KeyboardInterrupt:
        say("interrupted; stopping the stack")
        return 130
    results |= {"started_at": started.isoformat(), "command": " ".join(["python -m bench", *argv]),
                "args": vars(args)}
    return report.publish(results, report.render(results), started.strftime("%Y%m%dT%H%M%SZ"))


if __name__ == "__main__":
    sys.exit(main())
