"""`python -m bench matching`: referral matching throughput over the full directory (issue 4), beside
its ceilings, in one run.

1. Engine alone, in this process, before anything else starts: `match()` with the default rules over the
   generated directory (6,912 units, all 3,321 communes), for a case mix rotating over every commune
   (bench/matching_mix.py), at a fixed time by day and by night. Also the directory's load time and
   memory, and a cProfile of the engine.
2. Through the service: durable PostgreSQL, the broker, every migration and the directory seed, then
   referral alone. CaseReported events go straight to intake.cases.v1 (CloudEvents binary mode, key =
   case id) as fast as one aiokafka producer sends them; the figure is how long referral takes until
   every case has its referrals (consumer + matching + PostgreSQL + outbox), then until its relay has
   published every ReferralCreated. A py-spy profile of referral follows, on another batch.
3. Ceilings, with referral stopped: the same records produced and consumed raw on a scratch topic with
   as many partitions, and pgbench single-row INSERTs on the same PostgreSQL.

Prints one table and writes bench/results/matching-<UTC>.json (and the py-spy stacks beside it).
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import ceilings, machine, matching_report, report
from bench.common import (
    add_pgbench_args, apply_profiles, check_local, fetchval, fresh_stack, new_parser, pg_counters, run, say,
)
from bench.matching_mix import case_mix, records
from bench.profile import Recorder, _short, focus, py_spy_path, summarise
from bench.stats import percentile, rate
from devstack.stack import Stack, prepare, start_services
from runtime.db import asyncpg_dsn, create_engine, session_factory
from runtime.kafka import new_producer
from schemas.catalog import CATALOG
from schemas.geography import communes
from services.referral.directory import repository
from services.referral.directory.facts import directory_index
from services.referral.directory.generate import units
from services.referral.matching.engine import LOCAL_TZ, SkipReason, explain, match
from services.referral.matching.loader import RuleBook

TOPIC = "intake.cases.v1"
# A Wednesday in Hanoi: at 10:00 every office is open; at 23:30 an emergency needs a 24/7 duty contact.
TIMES = {"day": datetime(2026, 11, 25, 10, 0, tzinfo=LOCAL_TZ),
         "night": datetime(2026, 11, 25, 23, 30, tzinfo=LOCAL_TZ)}
# Polled while referral works: one inbox row per event, committed in the same transaction as the event's
# referrals, so it counts the cases done and is cheaper to count than the referrals (wide rows, several
# per case). Cases with referrals are counted once, at the end.
COUNT_DONE = "SELECT count(*) FROM referral.inbox"
COUNT_CASES = "SELECT count(DISTINCT case_id) FROM referral.referrals"
COUNT_REFERRALS = "SELECT count(*) FROM referral.referrals"
UNPUBLISHED = "SELECT count(*) FROM referral.outbox WHERE published_at IS NULL"
# PostgreSQL's own background work on referral's tables as they grow; its CPU counts as postgres's.
AUTOVACUUM = ("SELECT coalesce(sum(autovacuum_count), 0)::int, coalesce(sum(autoanalyze_count), 0)::int "
              "FROM pg_stat_user_tables WHERE schemaname = 'referral'")

# (quick, default)
PROFILES = {
    "engine_cases": (3321, 2 * 3321),
    "engine_rounds": (3, 3),
    "engine_profile_cases": (1000, 3321),
    "cases": (600, 3321),
    "warmup": (100, 200),
    "profile_cases": (300, 600),
    "drain_timeout": (120.0, 300.0),
    "pgbench_seconds": (3, 8),
    "pgbench_clients": ((1, 8), (1, 8)),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = new_parser("python -m bench matching", __doc__)
    p.add_argument("--quick", action="store_true", help="small N and short ceilings (smoke run, under a minute)")
    p.add_argument("--engine-cases", type=int, help="cases per round, engine alone (default 6642)")
    p.add_argument("--engine-rounds", type=int, help="rounds by day and by night, alternated (default 3)")
    p.add_argument("--engine-profile-cases", type=int, help="cases under cProfile, engine alone (default 3321)")
    p.add_argument("--cases", type=int, help="CaseReported events through the service (default 3321)")
    p.add_argument("--warmup", type=int, help="events before the measured batch (default 200)")
    p.add_argument("--profile-cases", type=int, help="events of the py-spy batch (default 600)")
    p.add_argument("--drain-timeout", type=float, help="seconds to wait for a batch's referrals (default 300)")
    add_pgbench_args(p)
    p.add_argument("--engine-only", action="store_true", help="only the in-process engine figures (no stack)")
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy run on referral")
    p.add_argument("--skip-ceilings", action="store_true", help="skip the Kafka and pgbench ceilings")
    args = p.parse_args(argv)
    apply_profiles(args, PROFILES)
    return args


# -- 1. engine alone ----------------------------------------------------------------------------
def measure_engine(args: argparse.Namespace) -> dict:
    out: dict = {"directory": load_directory()}
    directory, rules = directory_index(units()), RuleBook()
    cases = [c for c, _ in zip(case_mix(), range(args.engine_cases), strict=False)]
    out |= {"cases": len(cases), "units": len(directory.units), "communes": len({c.commune_code for c in cases}),
            "of_communes": len(communes()), "rules": [r.id for r in rules.current.rules],
            "rules_version": rules.version[:12], "mix": describe_mix(cases), "runs": {}}
    say(f"engine: match() x {len(cases)} cases, {args.engine_rounds} rounds each by day and by night "
        f"({', '.join(f'{k} {t:%a %H:%M}' for k, t in TIMES.items())} Asia/Ho_Chi_Minh)")
    timed: dict[str, list] = {label: [] for label in TIMES}
    for _ in range(args.engine_rounds):  # alternated, so a slow spell of the VM hits both
        for label, now in TIMES.items():
            timed[label].append(time_engine(cases, directory, rules, now))
    for label, now in TIMES.items():
        out["runs"][label] = combine(timed[label]) | outcome_stats(cases, directory, rules, now)
        say(f"  {label}: {out['runs'][label]['rate_per_s']} cases/s (median round), "
            f"p50 {out['runs'][label]['us_per_case']['p50']} µs")
    n = min(args.engine_profile_cases, len(cases))
    say(f"engine: cProfile over {n} cases (day)")
    out["cprofile"] = profile_engine(cases[:n], directory, rules, TIMES["day"])
    return out


def load_directory() -> dict:
    """directory_index(units()): the first build (cold caches: the map, the fact files), the best of three
    after it, the index alone over built units, and what the units and index hold in memory."""
    t0 = time.perf_counter()
    built = units()
    t1 = time.perf_counter()
    directory_index(built)
    t2 = time.perf_counter()
    again, index_only = [], []
    for _ in range(3):
        s = time.perf_counter()
        built = units()
        m = time.perf_counter()
        directory_index(built)
        e = time.perf_counter()
        again.append(e - s)
        index_only.append(e - m)
    del built
    gc.collect()
    tracemalloc.start()
    kept = directory_index(units())
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"units": len(kept.units), "first_ms": round((t2 - t0) * 1000, 1),
            "first_units_ms": round((t1 - t0) * 1000, 1), "best_ms": round(min(again) * 1000, 1),
            "index_only_best_ms": round(min(index_only) * 1000, 1),
            "memory_mb": round(current / 2**20, 1), "peak_mb": round(peak / 2**20, 1),
            "process_rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1)}


def describe_mix(cases: list) -> dict:
    n = max(1, len(cases))
    share = lambda pred: round(100 * sum(1 for c in cases if pred(c)) / n, 1)  # noqa: E731
    return {"urgency_pct": {u: share(lambda c, u=u: c.urgency == u) for u in ("normal", "high", "emergency")},
            "child_with_needs_pct": share(lambda c: any(v.is_child and v.needs for v in c.victims)),
            "any_needs_pct": share(lambda c: any(v.needs for v in c.victims)),
            "at_sea_pct": share(lambda c: c.at_sea), "abroad_pct": share(lambda c: c.abroad_country is not None),
            "across_border_pct": share(lambda c: c.moving_across_border),
            "immediate_danger_pct": share(lambda c: c.immediate_danger),
            "consent_pct": share(lambda c: c.consent_share_identity),
            "bytes_per_event": round(sum(len(c.model_dump_json()) for c in cases) / n)}


def time_engine(cases: list, directory, rules, now: datetime) -> dict:
    for c in cases[:500]:  # warm: the first calls fill caches (enum lookups, zoneinfo)
        match(c, directory, rules, now)
    clock, per, made = time.perf_counter_ns, [], 0
    others0 = _others()
    started = time.perf_counter()
    for c in cases:
        s = clock()
        made += len(match(c, directory, rules, now))
        per.append(clock() - s)
    elapsed = time.perf_counter() - started
    busy, steal = (b - a for a, b in zip(others0, _others(), strict=True))
    return {"now": now.isoformat(), "cases": len(cases), "seconds": elapsed, "per_case_ns": per, "made": made,
            "others_busy_s": busy, "steal_s": steal}


def combine(rounds: list[dict]) -> dict:
    """The median round's rate (and the spread), per-case times pooled over every round."""
    rates = sorted(r["cases"] / r["seconds"] for r in rounds)
    us = [p / 1000 for r in rounds for p in r["per_case_ns"]]
    wall, cases = sum(r["seconds"] for r in rounds), sum(r["cases"] for r in rounds)
    cores = psutil.cpu_count() or 1
    return {"now": rounds[0]["now"], "cases": rounds[0]["cases"], "rounds": len(rounds),
            "rate_per_s": round(rates[(len(rates) - 1) // 2], 1),
            "rate_per_s_rounds": [round(x, 1) for x in rates],
            "referrals_per_case": round(sum(r["made"] for r in rounds) / max(1, cases), 2),
            "us_per_case": {"p50": round(percentile(us, 50), 1), "p90": round(percentile(us, 90), 1),
                            "p99": round(percentile(us, 99), 1), "max": round(max(us), 1)},
            # The engine uses one core; these say whether anything else wanted the machine meanwhile.
            "others_busy_pct_of_all_cores": round(100 * max(0.0, sum(r["others_busy_s"] for r in rounds))
                                                  / (wall * cores), 1),
            "host_steal_pct_of_all_cores": round(100 * sum(r["steal_s"] for r in rounds) / (wall * cores), 1)}


def _others() -> tuple[float, float]:
    """(CPU seconds the machine spent on other processes than this one, seconds stolen by the host)."""
    me = psutil.Process().cpu_times()
    return _machine_busy() - me.user - me.system, getattr(psutil.cpu_times(), "steal", 0.0)


def _machine_busy() -> float:
    """CPU seconds every process on the machine has used so far (not idle, not waiting on I/O, not stolen)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def _with_others(cpu: dict, busy_s: float) -> dict:
    """Add the share of the machine that processes outside the stack used during the phase: this VM is
    shared (other work, other sessions), and a busy neighbour slows every figure here."""
    others, cores = max(0.0, busy_s - cpu["total_cpu_s"]), psutil.cpu_count() or 1
    cpu["others_busy_pct"] = round(100 * others / (cpu["wall_s"] * cores), 1) if cpu["wall_s"] else None
    return cpu


def outcome_stats(cases: list, directory, rules, now: datetime) -> dict:
    """What the mix does to the engine (untimed pass with explain(), which match() wraps)."""
    unmatched = closed = steps = identity = matches = 0
    for c in cases:
        o = explain(c, directory, rules, now)
        unmatched += bool(o.unmatched)
        closed += sum(1 for s in o.trace if s.skip is SkipReason.closed_now)
        steps += len(o.trace)
        matches += len(o.matches)
        identity += sum(m.identity_shared for m in o.matches)
    n = max(1, len(cases))
    return {"cases_with_unmatched_rule_pct": round(100 * unmatched / n, 1),
            "closed_now_skips_per_case": round(closed / n, 2), "trace_steps_per_case": round(steps / n, 1),
            "identity_shared_pct_of_referrals": round(100 * identity / max(1, matches), 1)}


def profile_engine(cases: list, directory, rules, now: datetime, top: int = 12) -> dict:
    prof = cProfile.Profile()
    started = time.perf_counter()
    prof.enable()
    for c in cases:
        match(c, directory, rules, now)
    prof.disable()
    # Shares of the profiled loop's wall time (cumulative times of generator frames overcount).
    total = time.perf_counter() - started
    stats = pstats.Stats(prof).stats  # (file, line, func) -> (calls, ncalls, self s, cumulative s, callers)
    name = lambda k: f"{k[2]} ({_short(k[0])}:{k[1]})" if k[0] != "~" else k[2]  # noqa: E731
    by_self = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    ours = [kv for kv in stats.items() if _short(kv[0][0]).startswith(("services/", "schemas/"))]
    by_cum = sorted(ours, key=lambda kv: -kv[1][3])[:top]
    return {"cases": len(cases), "profiled_s": round(total, 3),
            "self": [{"what": name(k), "calls": v[1], "pct": round(100 * v[2] / total, 1)} for k, v in by_self],
            "inclusive": [{"what": name(k), "calls": v[1], "pct": round(100 * v[3] / total, 1)} for k, v in by_cum]}


# -- 2. through the service ---------------------------------------------------------------------
def start_referral_only(stack: Stack) -> None:
    """Infra, every migration and the directory seed (prepare), then referral (and the SMTP sink that
    start_services always starts; it gets no work)."""
    stack.infra.start()
    prepare(stack.database_url, stack.bootstrap, extra_env=stack.extra_env)
    stack.services = start_services(
        stack.database_url, stack.bootstrap, stack.ports, pii_keys=stack.pii_keys, log_dir=stack.log_dir,
        extra_env=stack.extra_env, ready_timeout=stack.ready_timeout, names=("referral",),
        auth_secret=stack.auth_secret, pii_hmac_key=stack.pii_hmac_key)


async def directory_from_db(database_url: str) -> dict:
    """What the referral process pays when its DirectoryCache (re)loads: every row, then the index."""
    engine = create_engine(database_url, pool_size=1)
    times = []
    try:
        for _ in range(3):
            async with session_factory(engine)() as session:
                s = time.perf_counter()
                index = await repository.load(session)
                times.append(time.perf_counter() - s)
    finally:
        await engine.dispose()
    return {"units": len(index.units), "first_ms": round(times[0] * 1000, 1),
            "best_ms": round(min(times) * 1000, 1)}


async def produce(bootstrap: str, topic: str, recs: list) -> tuple[float, float]:
    """Send every record as fast as one producer with the relay's settings can; (start, seconds)."""
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h in recs]
        await asyncio.gather(*futures)
        return started, time.perf_counter() - started
    finally:
        await producer.stop()


async def wait_until(conn: asyncpg.Connection, sql: str, done, started: float, timeout: float,
                     what: str, interval: float = 0.1, seen: list | None = None) -> tuple[float | None, int]:
    """Poll `sql` until done(value); (seconds since `started`, last value), None on timeout. Each poll's
    (seconds, value) is appended to `seen`."""
    last_say = time.perf_counter()
    while True:
        value = await conn.fetchval(sql)
        now = time.perf_counter()
        if seen is not None:
            seen.append((now - started, value))
        if done(value):
            return round(now - started, 3), value
        if now - started > timeout:
            return None, value
        if now - last_say > 10:
            say(f"  ... {what}: {value}")
            last_say = now
        await asyncio.sleep(interval)


async def push(bootstrap: str, conn: asyncpg.Connection, recs: list, timeout: float) -> dict:
    """Produce a batch; time until referral has committed every event (and with it the case's referrals),
    then until its relay has published them. Every case gets at least the commune (or provincial)
    police, so a case without a referral at the end was not referred."""
    n = len(recs)
    done0, cases0, refs0 = [await conn.fetchval(q) for q in (COUNT_DONE, COUNT_CASES, COUNT_REFERRALS)]
    started, produce_s = await produce(bootstrap, TOPIC, recs)
    seen: list[tuple[float, int]] = []
    done_s, _ = await wait_until(conn, COUNT_DONE, lambda v: v >= done0 + n, started, timeout, "events processed",
                                 seen=seen)
    drained_s, backlog = await wait_until(conn, UNPUBLISHED, lambda v: v == 0, started, timeout,
                                          "ReferralCreated events not yet published")
    cases, referrals = await conn.fetchval(COUNT_CASES) - cases0, await conn.fetchval(COUNT_REFERRALS) - refs0
    return {"cases": n, "produce_s": round(produce_s, 3), "produce_per_s": rate(n, produce_s),
            "referrals_done_s": done_s, "rate_per_s": rate(n, done_s) if done_s else None,
            "missing_cases": max(0, n - cases), "outbox_drained_s": drained_s,
            "outbox_backlog_at_end": backlog, "referrals": referrals,
            "rate_by_fifth_per_s": by_fifth([(t, v - done0) for t, v in seen], n),
            "referrals_per_case": round(referrals / max(1, n), 2),
            "events_per_s": rate(referrals, drained_s) if drained_s else None}


def by_fifth(seen: list[tuple[float, int]], n: int) -> list[float | None]:
    """Cases per second over each fifth of a batch, from the polls (seconds, cases done): does referral
    keep its pace as its tables and the backlog change?"""
    out, last_t = [], 0.0
    for k in range(1, 6):
        t = next((t for t, v in seen if v >= k * n / 5), None)
        if t is None:
            return out + [None] * (5 - len(out))
        out.append(rate(round(n / 5), t - last_t))
        last_t = t
    return out


def batch(start: int, n: int) -> list:
    cases = [c for c, _ in zip(case_mix(start=start), range(n), strict=False)]
    return records(cases)


async def measure_service(stack: Stack, args: argparse.Namespace, profile_out: Path) -> dict:
    dsn = asyncpg_dsn(stack.database_url)
    out: dict = {"machine": machine.facts(await fetchval(dsn, "SHOW server_version")), "cpu": {}}
    pids = machine.stack_pids(stack)
    pids.pop("smtp", None)  # started by start_services, gets no work
    out["directory_from_db"] = await directory_from_db(stack.database_url)
    conn = await asyncpg.connect(dsn)
    try:
        say(f"warm-up: {args.warmup} events (consumer joined, directory cached)")
        warm = await push(stack.bootstrap, conn, batch(10_000_000, args.warmup), args.drain_timeout)
        if warm["missing_cases"]:
            raise RuntimeError(f"warm-up: referral did not refer {warm['missing_cases']} of {args.warmup} cases")

        recs = batch(0, args.cases)  # built before the clock starts; communes 0.. in code order
        say(f"through the service: {args.cases} CaseReported events -> {TOPIC} -> referral")
        pg0 = await pg_counters(dsn)
        av0 = await conn.fetchrow(AUTOVACUUM)
        cpu0, busy0, t0 = machine.cpu_seconds(pids), _machine_busy(), time.perf_counter()
        out["service"] = s = await push(stack.bootstrap, conn, recs, args.drain_timeout)
        out["cpu"]["service"] = _with_others(machine.cpu_delta(cpu0, machine.cpu_seconds(pids),
                                                               time.perf_counter() - t0, args.cases),
                                             _machine_busy() - busy0)
        pg1, per = await pg_counters(dsn), max(1, args.cases)  # pg_counters waits for the stats to settle
        s["autovacuum_runs"], s["autoanalyze_runs"] = (b - a for a, b in zip(av0, await conn.fetchrow(AUTOVACUUM),
                                                                             strict=True))
        s["pg_transactions_per_case"] = round((pg1[0] - pg0[0]) / per, 1)
        s["pg_wal_fsyncs_per_case"] = round((pg1[1] - pg0[1]) / per, 1) if pg1[1] is not None else None
        s["event_bytes_avg"] = round(sum(len(k) + len(v) + sum(len(a) + len(b) for a, b in h)
                                         for k, v, h in recs) / max(1, len(recs)))
        say(f"  {s['rate_per_s']} cases/s; every event published after {s['outbox_drained_s']} s")

        if not args.no_profile:
            say(f"profile: py-spy on referral (pid {pids['referral']}), {args.profile_cases} events")
            prof = batch(20_000_000, args.profile_cases)
            cpu0, busy0, t0 = machine.cpu_seconds(pids), _machine_busy(), time.perf_counter()
            with Recorder(pids["referral"], profile_out):
                p = await push(stack.bootstrap, conn, prof, args.drain_timeout)
            cpu = _with_others(machine.cpu_delta(cpu0, machine.cpu_seconds(pids), time.perf_counter() - t0,
                                                 args.profile_cases), _machine_busy() - busy0)
            out["cpu"]["profiled (py-spy)"] = cpu
            out["profile"] = {"file": str(profile_out.relative_to(report.RESULTS_DIR.parent.parent)),
                              "cases": args.profile_cases, "rate_per_s": p["rate_per_s"],
                              "referral_cpu_pct_of_one_core": round(
                                  100 * cpu["per_process"].get("referral", {}).get("cpu_s", 0) / cpu["wall_s"], 1),
                              **summarise(profile_out), "focus": focus(profile_out, FOCUS)}
    finally:
        await conn.close()

    if args.skip_ceilings:
        return out
    stack.services.stop()  # the ceilings run alone on the same PostgreSQL and broker
    stack.services = None
    out["ceilings"] = c = {"pgbench": []}
    say(f"ceiling: the same {len(recs)} records, raw produce and consume on a scratch topic")
    c["kafka"] = await kafka_ceiling(stack.bootstrap, recs, CATALOG.topic(TOPIC).partitions)
    await ceilings.create_scratch(dsn)
    try:
        for clients in args.pgbench_clients:
            say(f"ceiling: pgbench 1-row INSERT, -c {clients}, {args.pgbench_seconds} s")
            c["pgbench"].append(ceilings.pgbench(dsn, clients, args.pgbench_seconds))
    finally:
        await ceilings.drop_scratch(dsn)
    return out


# Where referral's time goes, by what the code does: (label, test on one frame's function and file).
FOCUS = (
    ("matching engine: match() / explain()",
     lambda f, p: f in ("match", "explain") and p.endswith("matching/engine.py")),
    ("each referral's reason and trace as JSON (_reason, _trace)",
     lambda f, p: f in ("_reason", "_trace") and p.endswith("referrals/handlers.py")),
    ("directory version check (DirectoryCache.current)", lambda f, p: f == "DirectoryCache.current"),
    ("unit of work commit: outbox rows, NOTIFY, COMMIT (UnitOfWork.commit)", lambda f, p: f == "UnitOfWork.commit"),
    ("outbox relay (OutboxRelay.run)", lambda f, p: f == "OutboxRelay.run"),
    ("Kafka client: fetch, produce (aiokafka, any frame)", lambda f, p: p.startswith("aiokafka/")),
    ("pydantic: CaseReported in, ReferralCreated out (any frame)", lambda f, p: p.startswith("pydantic/")),
)


async def kafka_ceiling(bootstrap: str, recs: list, partitions: int) -> dict:
    """The measured batch's records, produced by the same loop to a fresh topic with as many partitions,
    then read back by a consumer without a group (manual assignment, as the raw ceiling in ceilings.py)."""
    topic = f"bench.matching.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        _, produce_s = await produce(bootstrap, topic, recs)
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    fetch_max_wait_ms=10, auto_offset_reset="earliest")
        consumer.assign(tps)
        await consumer.start()
        try:
            await consumer.seek_to_beginning(*tps)
            consume_s = await ceilings.consume_all(consumer, len(recs))
        finally:
            await consumer.stop()
    finally:
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()
    return {"records": len(recs), "partitions": partitions, "produce_per_s": rate(len(recs), produce_s),
            "consume_per_s": rate(len(recs), consume_s)}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    check_local()
    if not args.engine_only and not args.no_profile and py_spy_path() is None:
        sys.exit("bench matching: py-spy not found; `.venv/bin/pip install -e '.[bench]'` or pass --no-profile")
    started = datetime.now(UTC)
    stamp = "matching-" + started.strftime("%Y%m%dT%H%M%SZ")
    report.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profile_out = report.RESULTS_DIR / f"{stamp}-pyspy.txt"
    results: dict = {}
    # First, alone in this process: nothing else is running yet to share the cores.
    results["engine"] = measure_engine(args)
    if args.engine_only:
        results["machine"] = machine.facts(None)
    else:
        try:
            with fresh_stack() as (stack, _logs):
                say("starting durable PostgreSQL, Tansu, migrations, the directory seed and referral alone")
                start_referral_only(stack)
                results |= run(measure_service(stack, args, profile_out))
        except KeyboardInterrupt:
            say("interrupted; stopping")
            return 130
    results |= {"started_at": started.isoformat(), "command": " ".join(["python -m bench matching", *argv]),
                "args": vars(args)}
    return report.publish(results, matching_report.render(results), stamp, profile_out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
