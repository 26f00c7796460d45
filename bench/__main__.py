"""`python -m bench` (make bench): the whole platform under an open-loop load at fixed rates, beside
ceilings measured in the same run on the same PostgreSQL and broker. See docs/performance.md.

For each offered rate (default 5, 10, 25, 50 and 100 reports/s, 30 s each) it reports POST /cases
latency, report -> first agency message latency (as the SMTP sink or the SMS gateway stamped the
message), the rates achieved, and each process's CPU and memory; then the maximum sustainable rate
(with a short search between the last stage that held and the first that did not), the ratios of our
figures to pgbench, a minimal FastAPI+asyncpg endpoint and a raw aiokafka loop, and issue 8's targets.
Writes bench/results/<UTC>.json and a chart beside it, bench/results/<UTC>.png.

`python -m bench intake [--help]` measures intake alone instead (bench/intake.py), and
`python -m bench matching [--help]` referral matching over the full directory (bench/matching.py), and
`python -m bench deadlines [--help]` the deadline scan over 100,000 open referrals (bench/deadlines.py), and
`python -m bench notify [--help]` notify's SMS and email throughput and emergencies under a backlog (bench/notify.py),
and `python -m bench reporting [--help]` reporting's projections, queries and rebuild (bench/reporting.py);
`python -m bench chart RESULTS.json [--out PNG]` draws a run's chart again (bench/chart.py).

Starts a fresh stack in a temp dir (DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS, if set, are used
instead but must be on this machine), and a fresh one again when a stage leaves a backlog behind.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bench import ceilings, chart, e2e, machine, report, verdict
from bench.common import apply_profiles, check_local, fetchval, floats, pg_counters, run, say
from bench.profile import Recorder, py_spy_path, summarise
from bench.resources import memory
from devstack.stack import Ports, Stack
from runtime.db import asyncpg_dsn

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS_CHART = REPO_ROOT / "docs" / "performance.png"
# Notify's token buckets are policy, not capacity: 50 SMS/s per provider account (the contract) and 1 message/s
# per recipient. At 100 reports/s over 34 provinces each provincial police unit would be sent about 3 messages/s,
# and the buckets, not the platform, would set every figure. The benchmark lifts them unless --shipped-limits.
LIFTED_LIMITS = {"NOTIFY_PROVIDER_RATE_PER_S": "100000", "NOTIFY_PROVIDER_BURST": "100000",
                 "NOTIFY_RECIPIENT_RATE_PER_S": "100000", "NOTIFY_RECIPIENT_BURST": "100000"}

# (quick, default): quick is a smoke run of a few minutes.
PROFILES = {
    "reports": (300, 2000),
    "concurrency": (32, 32),
    "rates": ((5.0, 20.0), (5.0, 10.0, 25.0, 50.0, 100.0)),
    "duration": (5.0, 30.0),
    "search": (1, 2),
    "drain_timeout": (30.0, 30.0),
    "settle_timeout": (30.0, 60.0),
    "max_in_flight": (256, 256),
    "idle_seconds": (2.0, 5.0),
    "pgbench_seconds": (3, 8),
    "pgbench_clients": ((1, 8, 32), (1, 8, 32)),
    "api_requests": (1000, 5000),
    "kafka_messages": (5000, 20000),
    "kafka_rate": (200.0, 200.0),
    "kafka_seconds": (2.0, 5.0),
}


def env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 5 and 20/s for 5 s, small N (a few minutes)")
    p.add_argument("--rates", type=floats, help="offered reports per second, one open-loop stage each "
                                                "(default 5,10,25,50,100)")
    p.add_argument("--rate", type=float, help="one stage at this rate (same as --rates RATE)")
    p.add_argument("--duration", type=float, help="seconds per stage (default 30)")
    p.add_argument("--search", type=int, help="extra stages halving the gap between the last stage that held "
                                              "and the first that did not (default 2; 0: none)")
    p.add_argument("--drain-timeout", type=float, help="seconds after a stage's last request to wait for the "
                                                       "answers, then as long for the first agency messages (30)")
    p.add_argument("--settle-timeout", type=float, help="seconds to wait for the platform to go idle after a "
                                                        "phase before a fresh stack is started instead (default 60)")
    p.add_argument("--max-in-flight", type=int, help="connections the open-loop client may open (default 256); "
                                                     "a request due while all are busy waits, and that counts")
    p.add_argument("--intake-p99-ms", type=float, default=verdict.Bounds.intake_p99_ms,
                   help="bound on POST /cases p99 for a stage to hold (default 50)")
    p.add_argument("--message-p99-ms", type=float, default=verdict.Bounds.message_p99_ms,
                   help="bound on report->first agency message p99 for a stage to hold (default 250)")
    p.add_argument("--min-achieved", type=float, default=verdict.Bounds.min_achieved,
                   help="share of the offered rate intake must answer and agencies must receive (default 0.95)")
    p.add_argument("--reports", type=int, help="reports in the closed-loop throughput test (default 2000; 0 skips)")
    p.add_argument("--concurrency", type=int, help="requests in flight, closed loop and minimal endpoint (32)")
    p.add_argument("--env", type=env_pair, action="append", default=[], metavar="NAME=VALUE",
                   help="a setting for every service (repeatable, over the lifted limits), recorded in the JSON")
    p.add_argument("--shipped-limits", action="store_true",
                   help="keep notify's token buckets as shipped (50 SMS/s per provider, 1 message/s per recipient)")
    p.add_argument("--profile", type=lambda t: tuple(x for x in t.split(",") if x), default=(), metavar="NAMES",
                   help="an extra stage with py-spy on these processes, e.g. notify,referral (not in the verdict)")
    p.add_argument("--profile-rate", type=float, help="the profiled stage's rate (default: the first stage that "
                                                      "missed, else the fastest)")
    p.add_argument("--skip-ceilings", action="store_true", help="only the platform's figures")
    p.add_argument("--update-docs", action="store_true", help="also copy the chart to docs/performance.png")
    p.add_argument("--chart-note", help="a second title line on the chart, e.g. 'short run, machine shared'")
    args = p.parse_args(argv)
    if args.rate is not None:
        args.rates = (args.rate,)
    apply_profiles(args, PROFILES)
    args.rates = tuple(sorted(set(args.rates)))
    args.service_env = {**({} if args.shipped_limits else LIFTED_LIMITS), **dict(args.env)}
    if args.profile and py_spy_path() is None:
        p.error("--profile needs py-spy: .venv/bin/pip install -e '.[bench]'")
    return args


class Stacks:
    """The stack under test, in one temporary directory, and a way to replace it with a fresh one (new
    PostgreSQL cluster, new broker) when a phase leaves a backlog the next phase would inherit."""

    def __init__(self, tmp: Path, extra_env: dict[str, str]):
        self.tmp, self.extra_env, self.count = tmp, extra_env, 0
        self.stack: Stack | None = None

    def start(self, attempts: int = 3) -> Stack:
        for attempt in range(1, attempts + 1):
            self.count += 1
            base = self.tmp / f"stack-{self.count}"
            self.stack = Stack(data_dir=base / "pg", ports=Ports.free(), fast=False, log_dir=base / "logs",
                               ready_timeout=120, extra_env=self.extra_env)
            try:
                self.stack.start()  # stops what it started if it fails
                return self.stack
            except RuntimeError as exc:
                # Ports.free() picks ports that are free now; a connection made in the minute a stack takes to
                # start can take one (the running services' own outgoing connections, another session's tests).
                if "already in use" not in str(exc) or attempt == attempts:
                    raise
                say(f"  {exc}; again with other ports")
        raise AssertionError("unreachable")

    def renewable(self) -> bool:
        """Only a stack whose PostgreSQL and broker are ours can be thrown away."""
        return bool(self.stack and self.stack.infra.postgres and self.stack.infra.broker)

    def renew(self) -> Stack:
        self.stop()
        return self.start()

    def stop(self) -> None:
        if self.stack:
            self.stack.stop()
            self.stack = None

    def logs(self) -> list[Path]:
        return sorted(self.tmp.glob("stack-*/logs"))


@contextmanager
def fresh_stacks(extra_env: dict[str, str]) -> Iterator[Stacks]:
    """As bench.common.fresh_stack, for a run that may replace its stack: everything stopped whatever
    happens, and after a failure every stack's service logs kept in bench/results/last-failure-logs."""
    with tempfile.TemporaryDirectory(prefix="hotline-bench-", ignore_cleanup_errors=True) as tmp:
        stacks = Stacks(Path(tmp), extra_env)
        try:
            yield stacks
        except Exception:
            dest = report.RESULTS_DIR / "last-failure-logs"
            say(f"failed; service logs copied to {dest}")
            for logs in stacks.logs():
                shutil.copytree(logs, dest / logs.parent.name, dirs_exist_ok=True)
            raise
        finally:
            stacks.stop()


async def _idle(stack: Stack, seconds: float) -> dict:
    pids = e2e.stack_pids(stack)
    before = machine.cpu_seconds(pids)
    await asyncio.sleep(seconds)
    idle = machine.cpu_delta(before, machine.cpu_seconds(pids), seconds, 0)
    idle["memory"] = memory(pids)
    return idle


def _stack_busy_pct(idle: dict) -> float:
    """The idle stack's share of the cores, without the load client."""
    wall, cores = idle["wall_s"], os.cpu_count() or 1
    used = sum(v["cpu_s"] for n, v in idle["per_process"].items() if n != e2e.LOAD_CLIENT)
    return round(100 * used / (wall * cores), 1) if wall else 0.0


async def _run_stage(stacks: Stacks, args, rate: float, idle_pct: float, fresh: bool, search: bool,
                     profile: tuple[str, ...] = ()) -> dict:
    stack = stacks.stack
    dsn = asyncpg_dsn(stack.database_url)
    async with e2e.load.client(2) as http:
        await e2e.clear_sinks(http, stack)
    events0 = await e2e.published_events(dsn)
    say(f"stage: {rate:g} reports/s for {args.duration:g} s, open loop" + (" (search)" if search else "")
        + (f" (py-spy on {', '.join(profile)})" if profile else ""))
    pids = e2e.stack_pids(stack)
    raw = {name: report.RESULTS_DIR / f"{args.stamp}-{name}-pyspy.txt" for name in profile if name in pids}
    if unknown := [name for name in profile if name not in pids]:
        say(f"  no process named {', '.join(unknown)} to profile; the stack has {', '.join(pids)}")
    report.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with ExitStack() as recorders:
        for name, out in raw.items():
            recorders.enter_context(Recorder(pids[name], out))
        s = await e2e.stage(stack, rate, args.duration, args.drain_timeout, dsn, args.max_in_flight)
    if profile:
        s["profiles"] = {name: {"file": str(out.relative_to(REPO_ROOT)), **summarise(out)}
                         for name, out in raw.items() if out.exists()}
    s["search"], s["fresh_stack"] = search, fresh
    if s["drained"] or not stacks.renewable():
        s["settle"] = await e2e.settle(dsn, stack.bootstrap, e2e.stack_pids(stack), idle_pct, args.settle_timeout)
    else:  # reports still missing after the drain timeout: the backlog is minutes long, do not wait for it
        s["settle"] = {"settled": False, "seconds": 0.0, "pending": None, "kafka_lag": None, "busy_pct": None,
                       "skipped": True}
    events1 = await e2e.published_events(dsn)
    if s["settle"]["settled"] and events0 is not None and events1 is not None and s["accepted"]:
        # Only once the platform is idle again: by then every event the stage's reports caused is out.
        s["events_by_kind_per_report"] = by_kind = e2e.events_per_report(events0, events1, s["accepted"])
        s["events_per_report"] = round(sum(by_kind.values()), 1)
    lat, msg = s["http_latency"], s["first_message_latency"]
    say(f"  intake {s['intake_achieved_per_s']}/s p99 {lat['p99_ms']} ms; agencies reached "
        f"{s['delivered_achieved_per_s']}/s, first message p50 {msg['p50_ms']} ms p99 {msg['p99_ms']} ms, "
        f"missing {s['missing']}; settled {s['settle']['settled']} in {s['settle']['seconds']} s")
    return s


async def measure(stacks: Stacks, args: argparse.Namespace) -> dict:
    stack = stacks.stack
    dsn = asyncpg_dsn(stack.database_url)
    bounds = verdict.Bounds(args.intake_p99_ms, args.message_p99_ms, args.min_achieved)
    out: dict = {"machine": machine.facts(await fetchval(dsn, "SHOW server_version")), "cpu": {},
                 "service_env": args.service_env, "stages": []}

    say("warm-up: 20 reports")
    await e2e.warm_up(stack)
    say(f"idle: {args.idle_seconds} s with no load (the consumers' polling, the broker)")
    out["cpu_idle"] = idle = await _idle(stack, args.idle_seconds)
    idle_pct = _stack_busy_pct(idle)
    fresh = False

    if args.reports:
        say(f"throughput: {args.reports} reports, {args.concurrency} in flight, closed loop")
        pids = e2e.stack_pids(stack)
        pg_before = await pg_counters(dsn)
        before, t0 = machine.cpu_seconds(pids), time.perf_counter()
        out["throughput"] = t = await e2e.throughput(stack, args.reports, args.concurrency, args.drain_timeout)
        out["cpu"]["closed loop"] = machine.cpu_delta(before, machine.cpu_seconds(pids), time.perf_counter() - t0,
                                                      t["accepted"])
        pg_after, per = await pg_counters(dsn), max(1, t["accepted"])
        t["pg_transactions_per_report"] = round((pg_after[0] - pg_before[0]) / per, 1)
        t["pg_wal_fsyncs_per_report"] = (round((pg_after[1] - pg_before[1]) / per, 1)
                                         if pg_after[1] is not None else None)
        say(f"  intake {t['intake_rate_per_s']}/s, end-to-end {t['e2e_rate_per_s']}/s")
        if t["drained"] or not stacks.renewable():
            t["settle"] = await e2e.settle(dsn, stack.bootstrap, e2e.stack_pids(stack), idle_pct, args.settle_timeout)
        else:
            t["settle"] = {"settled": False, "skipped": True}
        fresh = not t["settle"]["settled"]

    async def next_stage(rate: float, search: bool, profile: tuple[str, ...] = ()) -> dict:
        nonlocal fresh
        if fresh and stacks.renewable():
            say("the last phase left a backlog: starting a fresh stack")
            stacks.renew()
            await e2e.warm_up(stacks.stack)
        s = await _run_stage(stacks, args, rate, idle_pct, fresh and stacks.renewable(), search, profile)
        s["misses"] = verdict.misses(s, bounds)
        fresh = not s["settle"]["settled"]
        return s

    for rate in args.rates:
        out["stages"].append(await next_stage(rate, False))
    for _ in range(args.search):
        if (rate := verdict.next_search_rate(out["stages"], bounds)) is None:
            break
        out["stages"].append(await next_stage(rate, True))
    out["sustainable"] = verdict.max_sustainable(out["stages"], bounds)
    if args.profile:  # an extra stage, apart: py-spy slows what it samples a little
        rate = args.profile_rate or out["sustainable"]["first_miss_per_s"] or max(args.rates)
        out["profiled_stage"] = await next_stage(rate, False, args.profile)

    if not args.skip_ceilings:
        await _ceilings(stacks.stack, args, out)
    out["ratios"] = verdict.ratios(out)
    out["targets"] = verdict.targets(out, bounds)
    return out


async def _ceilings(stack: Stack, args: argparse.Namespace, out: dict) -> None:
    """pgbench, the minimal endpoint and raw Kafka, with the services stopped so nothing else competes."""
    dsn = asyncpg_dsn(stack.database_url)
    log_dir = stack.log_dir
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
    if argv[:1] == ["chart"]:  # `python -m bench chart RESULTS.json`: draw a run's chart again
        return chart.main(argv[1:])
    args = parse_args(argv)
    check_local()
    started = datetime.now(UTC)
    args.stamp = stamp = started.strftime("%Y%m%dT%H%M%SZ")
    try:
        with fresh_stacks(args.service_env) as stacks:
            say("starting the stack (durable PostgreSQL, Tansu, SMTP sink, SMS gateway, four services)")
            stacks.start()
            results = run(measure(stacks, args))
    except KeyboardInterrupt:
        say("interrupted; stopping the stack")
        return 130
    results |= {"started_at": started.isoformat(), "command": " ".join(["python -m bench", *argv]),
                "args": {k: v for k, v in vars(args).items()}, "stacks_started": stacks.count}
    if args.chart_note:
        results["chart_note"] = args.chart_note
    png = report.RESULTS_DIR / f"{stamp}.png"
    if results["stages"]:
        results["chart"] = str(chart.write(results, png))
    code = report.publish(results, report.render(results), stamp)
    if results.get("chart"):
        print(f"chart: {png}")
        if args.update_docs:
            shutil.copyfile(png, DOCS_CHART)
            print(f"chart copied to {DOCS_CHART}")
    return code

if __name__ == "__main__":
    sys.exit(main())
