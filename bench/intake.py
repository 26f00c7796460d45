"""`python -m bench intake`: intake alone (one uvicorn process) beside its ceilings, in one run.

Starts durable PostgreSQL, the broker (intake's outbox relay publishes to it), the migrations and
intake only, so nothing else competes for the cores. Then: closed-loop throughput of POST /cases
with a realistic report at fixed concurrencies; open-loop latency at fixed rates; a py-spy profile
of intake under closed-loop load; with intake stopped, pgbench single-row INSERTs and the minimal
FastAPI+asyncpg endpoint at the same concurrencies. Prints one table, PASS/MISS against issue 3's
targets (information, never a test) and writes bench/results/intake-<UTC>.json and the profile.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime
from itertools import count, cycle
from pathlib import Path

from bench import ceilings, intake_report, load, machine, report
from bench.common import (
    apply_profiles, check_local, fetchval, floats, fresh_stack, ints, new_parser, pg_counters, run, say,
)
from bench.profile import Recorder, py_spy_path, summarise
from bench.stats import rate, summary_ms
from devstack.stack import Stack, prepare, start_services
from runtime.db import asyncpg_dsn
from schemas.geography import communes

# (quick, default)
PROFILES = {
    "requests": (300, 2000),
    "concurrency": ((16, 32), (16, 32)),
    "rates": ((50.0, 100.0), (50.0, 100.0)),
    "duration": (5.0, 15.0),
    "profile_requests": (300, 1500),
    "pgbench_seconds": (3, 8),
    "pgbench_clients": ((1, 8, 32), (1, 8, 32)),
    "api_requests": (1000, 5000),
}


def case_body():
    """The shape of a real report (tests/intake FULL_CASE): a named child victim and a narrative
    (both encrypted), a trafficker, exploitation facts. Communes rotate over the whole map, and names
    and descriptions differ per report: intake flags cases in one commune that share a victim or a
    suspect, and identical bodies would turn every report into a duplicate of all earlier ones."""
    places, serial = cycle(sorted(communes().items())), count()

    def make(_i: int) -> dict:
        commune, (_name, province), i = *next(places), next(serial)
        return {
            "province_code": province, "commune_code": commune, "channel": "phone",
            "victims": [{"name": f"Lò Thị D {i}", "sex": "female", "age": 16, "nationality": "VN",
                         "ethnicity": "Thái", "needs": ["shelter", "psychological"]},
                        {"sex": "female", "age_band": "21-23"}],
            "traffickers": [{"description": f"man called Tuan with a scar, {i}", "role": "recruiter",
                             "relationship": "friend"}],
            "exploitation": ["forced_marriage"], "means_of_control": ["withholds_documents", "restricts_movement"],
            "recruitment_channel": "zalo", "moving_across_border": True, "destination_country": "CN",
            "narrative": f"Called from a bus near Lào Cai, report {i}",
        }

    return make


def case_headers(stack: Stack):
    """The operator's bearer token, and a fresh Idempotency-Key per request (the idempotency path runs)."""
    auth = stack.auth_headers("operator", sub="bench")
    return lambda i: {**auth, "Idempotency-Key": uuid.uuid4().hex}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = new_parser("python -m bench intake", __doc__)
    p.add_argument("--quick", action="store_true", help="small N and short durations (smoke run)")
    p.add_argument("--requests", type=int, help="POST /cases per closed-loop run (default 2000)")
    p.add_argument("--concurrency", type=ints, help="closed-loop requests in flight, comma-separated (16,32)")
    p.add_argument("--rates", type=floats, help="open-loop cases per second, comma-separated (50,100)")
    p.add_argument("--duration", type=float, help="seconds per open-loop rate (default 15)")
    p.add_argument("--profile-requests", type=int, help="requests of the profiled closed-loop run (1500)")
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy run")
    p.add_argument("--skip-ceilings", action="store_true", help="skip pgbench and the minimal endpoint")
    args = p.parse_args(argv)
    apply_profiles(args, PROFILES)
    return args


def start_intake_only(stack: Stack) -> None:
    """Infra, every migration, then intake (and the SMTP sink start_services always starts)."""
    stack.infra.start()
    prepare(stack.database_url, stack.bootstrap, extra_env=stack.extra_env)
    stack.services = start_services(
        stack.database_url, stack.bootstrap, stack.ports, pii_keys=stack.pii_keys, log_dir=stack.log_dir,
        extra_env=stack.extra_env, ready_timeout=stack.ready_timeout, names=("intake",),
        auth_secret=stack.auth_secret, pii_hmac_key=stack.pii_hmac_key)


async def drain_outbox(dsn: str, timeout: float = 60.0) -> float | None:
    """Wait until the relay has published every event, so one phase's backlog is not the next one's
    load. Returns the seconds it took, None on timeout."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if not await fetchval(dsn, "SELECT count(*) FROM intake.outbox WHERE published_at IS NULL"):
            return round(time.perf_counter() - started, 2)
        await asyncio.sleep(0.2)
    return None


def _http(run: load.Run) -> dict:
    return {"ok": len(run.ok), "errors": run.errors(), "http_latency": summary_ms([s.latency_s for s in run.ok])}


async def measure(stack: Stack, args: argparse.Namespace, log_dir: Path, profile_out: Path) -> dict:
    dsn = asyncpg_dsn(stack.database_url)
    url, body, headers = f"{stack.url('intake')}/cases", case_body(), case_headers(stack)
    out: dict = {"machine": machine.facts(await fetchval(dsn, "SHOW server_version")),
                 "closed": [], "open": [], "cpu": {}}
    pids = machine.stack_pids(stack)
    pids.pop("tansu", None), pids.pop("smtp", None)  # not intake's cost; tansu only takes the relay's events

    # A fresh client pool per phase: uvicorn closes connections idle for 5 s, and reusing one races it.
    async with load.Clients() as clients:
        say("warm-up: 200 cases, 8 in flight")
        warm = await load.closed_loop(clients, url, body, 200, 8, headers)
        if len(warm.ok) != 200:
            raise RuntimeError(f"warm-up: intake answered {warm.errors()}")
    await drain_outbox(dsn)

    for c in args.concurrency:
        async with load.Clients() as clients:
            say(f"closed loop: {args.requests} cases, {c} in flight")
            pg0, cpu0, t0 = await pg_counters(dsn), machine.cpu_seconds(pids), time.perf_counter()
            run = await load.closed_loop(clients, url, body, args.requests, c, headers)
            cpu = machine.cpu_delta(cpu0, machine.cpu_seconds(pids), time.perf_counter() - t0, len(run.ok))
            drained = await drain_outbox(dsn)
            pg1 = await pg_counters(dsn)
            out["cpu"][f"closed c={c}"] = cpu
            out["closed"].append({"concurrency": c, "requests": args.requests, **_http(run),
                                  "rate_per_s": rate(len(run.ok), run.elapsed_s),
                                  "outbox_drain_after_s": drained,
                                  "pg_transactions_per_case": round((pg1[0] - pg0[0]) / max(1, len(run.ok)), 1),
                                  "pg_wal_fsyncs_per_case": round((pg1[1] - pg0[1]) / max(1, len(run.ok)), 1)
                                  if pg1[1] is not None else None})
            say(f"  {out['closed'][-1]['rate_per_s']} cases/s, p99 {out['closed'][-1]['http_latency']['p99_ms']} ms")

    for r in args.rates:
        say(f"open loop: {r}/s for {args.duration} s")
        cpu0, t0 = machine.cpu_seconds(pids), time.perf_counter()
        async with load.Clients() as clients:
            run = await load.open_loop(clients, url, body, r, args.duration, headers)
        out["cpu"][f"open {r:g}/s"] = machine.cpu_delta(cpu0, machine.cpu_seconds(pids),
                                                        time.perf_counter() - t0, len(run.ok))
        out["open"].append({"rate_per_s": r, "duration_s": args.duration, "scheduled": len(run.samples),
                            **_http(run), "client_max_launch_lag_ms": round(run.max_launch_lag_s * 1000, 2),
                            "outbox_drain_after_s": await drain_outbox(dsn)})
        say(f"  p50 {out['open'][-1]['http_latency']['p50_ms']} ms, p99 {out['open'][-1]['http_latency']['p99_ms']} ms")

    if not args.no_profile:
        c = max(args.concurrency)
        say(f"profile: py-spy on intake (pid {pids['intake']}), {args.profile_requests} cases, {c} in flight")
        cpu0, t0 = machine.cpu_seconds(pids), time.perf_counter()
        async with load.Clients() as clients:
            with Recorder(pids["intake"], profile_out):
                run = await load.closed_loop(clients, url, body, args.profile_requests, c, headers)
        cpu = machine.cpu_delta(cpu0, machine.cpu_seconds(pids), time.perf_counter() - t0, len(run.ok))
        await drain_outbox(dsn)
        out["profile"] = {"file": str(profile_out.relative_to(report.RESULTS_DIR.parent.parent)),
                          "concurrency": c, "requests": args.profile_requests,
                          "rate_per_s": rate(len(run.ok), run.elapsed_s),
                          "intake_cpu_pct_of_one_core": round(
                              100 * cpu["per_process"].get("intake", {}).get("cpu_s", 0) / cpu["wall_s"], 1),
                          **summarise(profile_out)}

    if args.skip_ceilings:
        return out
    stack.services.stop()  # the ceilings run alone on the same PostgreSQL
    stack.services = None
    out["ceilings"] = cl = {"pgbench": [], "minimal_api": []}
    await ceilings.create_scratch(dsn)
    try:
        for clients_n in args.pgbench_clients:
            say(f"ceiling: pgbench 1-row INSERT, -c {clients_n}, {args.pgbench_seconds} s")
            cl["pgbench"].append(ceilings.pgbench(dsn, clients_n, args.pgbench_seconds))
        for c in args.concurrency:
            say(f"ceiling: minimal FastAPI+asyncpg endpoint, {args.api_requests} requests, {c} in flight")
            cl["minimal_api"].append(await ceilings.minimal_api(dsn, args.api_requests, c, log_dir))
    finally:
        await ceilings.drop_scratch(dsn)
    return out


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    check_local()
    if not args.no_profile and py_spy_path() is None:
        sys.exit("bench intake: py-spy not found; `.venv/bin/pip install -e '.[bench]'` or pass --no-profile")
    started = datetime.now(UTC)
    stamp = "intake-" + started.strftime("%Y%m%dT%H%M%SZ")
    report.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profile_out = report.RESULTS_DIR / f"{stamp}-pyspy.txt"
    try:
        with fresh_stack() as (stack, logs):
            say("starting durable PostgreSQL, Tansu, migrations and intake alone")
            start_intake_only(stack)
            results = run(measure(stack, args, logs, profile_out))
    except KeyboardInterrupt:
        say("interrupted; stopping")
        return 130
    results |= {"started_at": started.isoformat(), "command": " ".join(["python -m bench intake", *argv]),
                "args": vars(args)}
    return report.publish(results, intake_report.render(results), stamp, profile_out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
