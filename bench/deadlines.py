"""`python -m bench deadlines`: the cost of a deadline scan with 100,000 open referrals (issue 4), beside
its ceilings, in one run.

1. Durable PostgreSQL only (no broker, no referral service: nothing else scans), a database of the
   bench's own in it, referral's migrations and the directory seed.
2. A bulk load: the matching engine refers one rotation of the case mix (bench/matching_mix.py, every
   commune once) at T0 against the seeded directory; those referrals (real units, provinces, reasons and
   traces) are copied by one INSERT ... SELECT over generate_series until there are --referrals open
   ones (status notified, due_step remind; a case's open referrals share one deadline, the cases'
   deadlines evenly spaced over --window-hours after T0, in a shuffled order) and --acknowledged others
   (no timer). Then VACUUM ANALYZE, as autovacuum would have.
3. The scanner is the service's own code (fire_due in a UnitOfWork per batch, the loop of
   deadline_worker) in a process of its own (bench/deadlines_scan.py), under a clock the bench sets:
   - the empty scan: --empty-scans scans at T0, when nothing is due, and EXPLAIN (ANALYZE, BUFFERS) of
     its SELECT (as captured from the scanner, custom and generic plan);
   - due bursts: the clock moves to the due time of the k-th next reminder, and the scanner drains the k
     reminders (batches of 100 until none); then one minute later (the bench's scanner escalates one
     minute after a reminder, whatever the urgency), the k escalations, each a new referral one level
     up. Reminders falling due in that minute are fired first, untimed, with an escalation a year away,
     so that each timed drain fires one kind of step only;
   - two scanner processes draining one burst together, then its escalations; every step must fire
     exactly once (outbox events per referral id);
   - a py-spy profile of the scanner process over another burst (reminders, then escalations);
   - the empty scan again after all that (dead index entries of moved timers), and after VACUUM.
4. Ceilings, in the same run on the same rows: the scanner's own SELECT ... FOR UPDATE SKIP LOCKED
   LIMIT 100 and one UPDATE per batch in plain asyncpg (and the same with the outbox rows and NOTIFY),
   the same SELECT with nothing due, and pgbench single-row INSERTs at 1 and 8 clients.

Prints one table and writes bench/results/deadlines-<UTC>.json (and the py-spy stacks beside it).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import psutil

from bench import ceilings, deadlines_report, machine, report
from bench.common import (
    add_pgbench_args, apply_profiles, check_local, fetchval, fresh_stack, ints, new_parser, run, say,
)
from bench.matching_mix import case_mix
from bench.profile import Recorder, py_spy_path, summarise
from bench.profile import focus as shares_of
from bench.stats import rate, summary_ms
from devstack.postgres import EmbeddedPostgres
from devstack.stack import DATABASE, Stack, new_link_secret
from runtime import migrations
from runtime.db import asyncpg_dsn, create_engine, session_factory
from schemas import event_spec_for_model
from schemas.events.referrals import ReferralEscalated, ReferralReminder
from schemas.geography import communes

REPO_ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 10:00 in Hanoi, a Tuesday (as tests/referral)
FAST, PARK = 1, 365 * 24 * 60  # minutes from a reminder to its escalation: measured bursts, parked steps
EPSILON = timedelta(microseconds=1)  # PostgreSQL's resolution
PERMUTATION_PRIMES = (1_000_003, 7_919, 104_729)
REMINDER, ESCALATED = (event_spec_for_model(m).type for m in (ReferralReminder, ReferralEscalated))

# (quick, default)
PROFILES = {
    "referrals": (20_000, 100_000),
    "acknowledged": (10_000, 50_000),
    "window_hours": (24.0, 24.0),
    "empty_scans": (200, 1000),
    "bursts": ((1000, 3000), (1000, 10_000)),
    "concurrent_burst": (3000, 10_000),
    "profile_burst": (1000, 5000),
    "raw_burst": (3000, 10_000),
    "limit": (100, 100),
    "pgbench_seconds": (3, 8),
    "pgbench_clients": ((1, 8), (1, 8)),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = new_parser("python -m bench deadlines", __doc__)
    p.add_argument("--quick", action="store_true", help="20,000 open referrals, smaller bursts (smoke run)")
    p.add_argument("--referrals", type=int, help="open referrals with a reminder due (default 100000)")
    p.add_argument("--acknowledged", type=int, help="acknowledged referrals, no timer (default 50000)")
    p.add_argument("--window-hours", type=float, help="reminders spread evenly over this after T0 (24)")
    p.add_argument("--empty-scans", type=int, help="scans timed with nothing due, each time (default 1000)")
    p.add_argument("--bursts", type=ints, help="reminder bursts drained by one scanner, comma-separated "
                                               "(1000,10000); each followed by its escalations")
    p.add_argument("--concurrent-burst", type=int, help="burst drained by two scanner processes (10000)")
    p.add_argument("--profile-burst", type=int, help="burst drained under py-spy (default 5000)")
    p.add_argument("--raw-burst", type=int, help="burst of each raw asyncpg ceiling loop (default 10000)")
    p.add_argument("--limit", type=int, help="steps per scan, fire_due's limit (default 100, the service's)")
    add_pgbench_args(p)
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy burst")
    p.add_argument("--skip-ceilings", action="store_true", help="skip pgbench and the raw asyncpg loops")
    args = p.parse_args(argv)
    apply_profiles(args, PROFILES)
    if args.no_profile:
        args.profile_burst = 0
    if args.skip_ceilings:
        args.raw_burst = 0
    used = sum(args.bursts) + 2 * args.concurrent_burst + args.profile_burst + 2 * args.raw_burst
    if used > 0.9 * args.referrals:
        p.error(f"the bursts take {used:,} reminders; --referrals must be at least {math.ceil(used / 0.9):,}")
    return args


# -- load ----------------------------------------------------------------------------------------
def permutation_prime(total: int) -> int:
    """A prime whose multiples modulo `total` visit every residue once: (i * p) % total shuffles 0..total-1."""
    return next(p for p in PERMUTATION_PRIMES if math.gcd(p, total) == 1)


TEMPLATE = """CREATE TEMP TABLE bench_template (seq serial, case_no int, unit_id uuid, urgency text, province_code text,
    match_reason text, rule_ids text[], trace jsonb, identity_shared boolean)"""
TEMPLATE_COLUMNS = ["case_no", "unit_id", "urgency", "province_code", "match_reason", "rule_ids", "trace",
                    "identity_shared"]
# $1 copies, $2 and $3 permutation primes for rows and cases, $4 total rows, $5 open rows, $6 T0, $7 window
# seconds, $8 cases per copy, $9 cases in all the copies.
# Row i of the copies becomes j = (i * $2) % total: open when j < open, else acknowledged, so open and
# acknowledged rows are shuffled over the units, provinces and cases (a case may have both: one unit
# acknowledged, another not yet). Case c becomes cj = (c * $3) % cases: its open referrals share one
# deadline, as referrals made together do, the cases' deadlines evenly spaced over the window.
LOAD = """
WITH numbered AS (
    SELECT k, t.*, row_number() OVER (ORDER BY k, t.seq) - 1 AS i, k::bigint * $8::int + t.case_no AS c
    FROM generate_series(0, $1::int - 1) AS k CROSS JOIN pg_temp.bench_template AS t
), placed AS (
    SELECT n.*, (n.i * $2::bigint) % $4::bigint AS j, (n.c * $3::bigint) % $9::bigint AS cj
    FROM numbered AS n WHERE n.i < $4::bigint
), timed AS (
    SELECT p.*, p.j < $5::bigint AS open,
           CASE WHEN p.j < $5::bigint
                THEN $6::timestamptz + make_interval(secs => (p.cj + 0.5) * $7::float8 / $9::bigint)
                ELSE $6::timestamptz - make_interval(secs => (p.j - $5::bigint) * 60.0) END AS deadline
    FROM placed AS p
)
INSERT INTO referral.referrals (id, case_id, case_number, agency_unit_id, status, urgency, province_code, match_reason,
    rule_ids, trace, identity_shared, acknowledge_by, created_at, updated_at, version, notified_at,
    acknowledged_at, cause, due_step, due_at)
SELECT gen_random_uuid(), md5('bench-deadlines/' || c)::uuid, '111-2026-' || lpad((c + 1)::text, 7, '0'), unit_id,
       CASE WHEN open THEN 'notified' ELSE 'acknowledged' END, urgency, province_code, match_reason, rule_ids,
       trace, identity_shared, deadline,
       CASE WHEN open THEN $6::timestamptz - interval '1 hour' ELSE deadline - interval '1 day' END,
       CASE WHEN open THEN $6::timestamptz - interval '59 minutes' ELSE deadline - interval '23 hours' END,
       CASE WHEN open THEN 2 ELSE 3 END,
       CASE WHEN open THEN $6::timestamptz - interval '59 minutes'
            ELSE deadline - interval '1 day' + interval '1 minute' END,
       CASE WHEN open THEN NULL ELSE deadline - interval '23 hours' END,
       'matched', CASE WHEN open THEN 'remind' END, CASE WHEN open THEN deadline END
FROM timed
"""
# Each case's facts, as referral keeps them (the agency feeds read them): the bare facts a case needs.
FACTS = """
INSERT INTO referral.case_facts (case_id, version, facts, updated_at)
SELECT DISTINCT ON (case_id) case_id, 1, jsonb_build_object('case_id', case_id, 'case_number', case_number,
       'province_code', province_code, 'urgency', urgency), now()
FROM referral.referrals ORDER BY case_id
"""
SIZES = """SELECT pg_relation_size('referral.referrals'), pg_total_relation_size('referral.referrals'),
                  pg_relation_size('referral.ix_referrals_due')"""
AUTOVACUUM = ("SELECT autovacuum_count, autoanalyze_count, n_dead_tup FROM pg_stat_user_tables "
              "WHERE schemaname = 'referral' AND relname = 'referrals'")


async def create_database(admin_dsn: str, database_url: str) -> tuple[str, str]:
    """A database of the bench's own on the server (also when DATABASE_URL names one already in use)."""
    name = f"bench_deadlines_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = database_url.rsplit("/", 1)[0] + f"/{name}"
    return url, asyncpg_dsn(url)


async def drop_database(admin_dsn: str, dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


async def template(url: str) -> tuple[list[tuple], int]:
    """What referral writes for one rotation of the case mix (3,321 cases, every commune) at T0, from the
    seeded directory as the service loads it: (rows, cases)."""
    from services.referral.directory import repository
    from services.referral.matching.engine import match
    from services.referral.matching.loader import RuleBook
    from services.referral.referrals.handlers import _reason, _trace

    engine = create_engine(url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            directory = await repository.load(session)
    finally:
        await engine.dispose()
    rules, rows, cases = RuleBook(), [], 0
    for case, _ in zip(case_mix(reported_at=T0), range(len(communes())), strict=False):
        for m in match(case, directory, rules, T0):
            rows.append((cases, m.unit.id, str(case.urgency.value), case.province_code, _reason(m)[:500],
                         list(m.rules), json.dumps(_trace(m)), m.identity_shared))
        cases += 1
    return rows, cases


async def load(conn: asyncpg.Connection, url: str, args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    rows, cases = await template(url)
    t1 = time.perf_counter()
    total = args.referrals + args.acknowledged
    await conn.execute(TEMPLATE)
    await conn.copy_records_to_table("bench_template", records=rows, columns=TEMPLATE_COLUMNS)
    copies = math.ceil(total / len(rows))
    await conn.execute(LOAD, copies, permutation_prime(total), permutation_prime(copies * cases), total,
                       args.referrals, T0, args.window_hours * 3600, cases, copies * cases)
    await conn.execute("DROP TABLE pg_temp.bench_template")
    await conn.execute(FACTS)
    t2 = time.perf_counter()
    await conn.execute("VACUUM (ANALYZE) referral.referrals")
    await conn.execute("VACUUM (ANALYZE) referral.case_facts")
    await conn.execute("CHECKPOINT")
    t3 = time.perf_counter()
    stats = await conn.fetchrow("""
        SELECT count(*) FILTER (WHERE due_step = 'remind') AS open, count(*) FILTER (WHERE due_at IS NULL) AS no_timer,
               count(*) AS total, count(DISTINCT agency_unit_id) AS units, count(DISTINCT province_code) AS provinces,
               count(DISTINCT case_id) AS cases, min(due_at) AS first_due, max(due_at) AS last_due,
               round(avg(pg_column_size(r.*))) AS row_bytes
        FROM referral.referrals AS r""")
    urgency = {r["urgency"]: r["n"] for r in await conn.fetch(
        "SELECT urgency, count(*) AS n FROM referral.referrals WHERE due_step = 'remind' GROUP BY 1")}
    heap, with_indexes, due_index = await conn.fetchrow(SIZES)
    return {"template_cases": cases, "template_referrals": len(rows), "copies": copies,
            "open": stats["open"], "acknowledged": stats["no_timer"], "rows": stats["total"],
            "cases": stats["cases"], "units": stats["units"], "provinces": stats["provinces"],
            "first_due": stats["first_due"].isoformat(), "last_due": stats["last_due"].isoformat(),
            "urgency_of_open": urgency, "row_bytes_avg": int(stats["row_bytes"]),
            "heap_mb": round(heap / 2**20, 1), "table_and_indexes_mb": round(with_indexes / 2**20, 1),
            "due_index_mb": round(due_index / 2**20, 2), "matching_s": round(t1 - t0, 2),
            "insert_s": round(t2 - t1, 2), "vacuum_s": round(t3 - t2, 2)}


# -- the scanner processes -----------------------------------------------------------------------
class Scanner:
    """A bench/deadlines_scan.py process: one referral replica's deadline worker."""

    def __init__(self, url: str, log: Path, name: str):
        self.url, self.log, self.name = url, log, name
        self.proc: asyncio.subprocess.Process | None = None
        self.sql = ScanSQL("", [])

    async def start(self) -> Scanner:
        env = dict(os.environ, PYTHONUNBUFFERED="1", REFERRAL_LINK_SECRET=new_link_secret())
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.deadlines_scan", self.url, cwd=REPO_ROOT, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log, limit=2**24)
        ready = await self.read(180)
        self.sql = ScanSQL(ready["sql"], ready["params"])
        if "FOR UPDATE SKIP LOCKED" not in self.sql.text:
            raise RuntimeError(f"scanner {self.name} did not capture fire_due's SELECT: {self.sql.text!r}")
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, cmd: dict) -> None:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())

    async def read(self, timeout: float = 3600) -> dict:
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"scanner {self.name} exited ({await self.proc.wait()}); see {self.log}")
        return json.loads(line)

    async def ask(self, cmd: dict) -> dict:
        self.send(cmd)
        return await self.read()

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            self.send({"cmd": "exit"})
            await asyncio.wait_for(self.proc.wait(), 15)
        except Exception:  # noqa: BLE001 - a dead pipe or a hung scanner: it is ended either way
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()


def drain_cmd(now: datetime, escalate_minutes: int, limit: int) -> dict:
    return {"cmd": "drain", "now": now.isoformat(), "escalate_minutes": escalate_minutes, "limit": limit}


# -- measuring -------------------------------------------------------------------------------------
XACTS = "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()"
WAL = ("SELECT (SELECT sum(fsyncs)::bigint FROM pg_stat_io WHERE object = 'wal'), "
       "(SELECT wal_bytes::bigint FROM pg_stat_wal)")


async def pg_stats(conn: asyncpg.Connection) -> tuple:
    """(commits, rollbacks, WAL fsyncs, WAL bytes) of the cluster so far. Every process the bench drives
    asks for its counters to be flushed when it is done (pg_stat_force_next_flush), then this waits."""
    await asyncio.sleep(1.0)
    async with conn.transaction():  # one reading transaction, which per_item takes off
        xacts = tuple(await conn.fetchrow(XACTS))
        try:
            async with conn.transaction():
                wal = tuple(await conn.fetchrow(WAL))
        except asyncpg.PostgresError:  # before PostgreSQL 16 (pg_stat_io)
            wal = (None, None)
    return xacts + wal


async def flush_stats(conn: asyncpg.Connection) -> None:
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")
    except asyncpg.PostgresError:
        pass


def per_item(before: tuple, after: tuple, items: int, own_xacts: int = 1) -> dict:
    """Per step (or scan): the counters' increase, less the bench's own reading transaction."""
    n = max(1, items)
    d = [None if a is None or b is None else b - a for a, b in zip(before, after, strict=True)]
    return {"pg_commits_per_item": round((d[0] - own_xacts) / n, 4), "pg_rollbacks_per_item": round(d[1] / n, 4),
            "pg_wal_fsyncs_per_item": None if d[2] is None else round(d[2] / n, 4),
            "pg_wal_bytes_per_item": None if d[3] is None else round(d[3] / n)}


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


class Meter:
    """CPU per process (scanners, PostgreSQL, this process) and what processes outside them used."""

    BENCH = "bench (raw loops, checks)"

    def __init__(self, pids: dict[str, int]):
        self.pids = pids

    def now(self) -> tuple[dict, float, float]:
        out = machine.cpu_seconds(self.pids)
        me = psutil.Process().cpu_times()
        out[self.BENCH] = me.user + me.system
        return out, _machine_busy(), time.perf_counter()

    def delta(self, start: tuple, items: int) -> dict:
        cpu0, busy0, t0 = start
        cpu1, busy1, t1 = self.now()
        d = machine.cpu_delta(cpu0, cpu1, t1 - t0, items)
        others, cores = max(0.0, busy1 - busy0 - d["total_cpu_s"]), psutil.cpu_count() or 1
        d["others_busy_pct"] = round(100 * others / (d["wall_s"] * cores), 1) if d["wall_s"] else None
        return d


def drain_summary(answers: list[dict], expected: int, kind: str) -> dict:
    """One drain by one or more scanners: steps of each kind, steps/s over the drain's wall time (first
    scanner's start to the last step), batch times."""
    batches = [ms for a in answers for ms in a["batch_ms"]]
    steps = sum(a["reminders"] + a["escalations"] for a in answers)
    wall = max(a["ended"] for a in answers) - min(a["started"] for a in answers)
    return {"kind": kind, "expected": expected, "scanners": len(answers),
            "reminders": sum(a["reminders"] for a in answers), "escalations": sum(a["escalations"] for a in answers),
            "steps": steps, "wall_s": round(wall, 3), "steps_per_s": rate(steps, wall),
            "batches": len(batches), "batch_ms": summary_ms([ms / 1000 for ms in batches]),
            "steps_per_scanner": [a["reminders"] + a["escalations"] for a in answers],
            "errors": [e for a in answers for e in a["errors"]],
            "scanner_cpu_s": round(sum(a["cpu_s"] for a in answers), 3)}


async def due_clock(conn: asyncpg.Connection, k: int) -> datetime:
    """The due time of the k-th next reminder: at it, k reminders are due, or a few more (the other open
    referrals of that case share its deadline), and nothing else is."""
    at = await conn.fetchval("SELECT due_at FROM referral.referrals WHERE due_step = 'remind' AND due_at IS NOT NULL "
                             "ORDER BY due_at OFFSET $1 LIMIT 1", k - 1)
    if at is None:
        raise RuntimeError(f"fewer than {k} reminders left: raise --referrals")
    return at


async def due_ids(conn: asyncpg.Connection, now: datetime) -> tuple[list[str], dict]:
    rows = await conn.fetch("SELECT id, due_step FROM referral.referrals WHERE due_at <= $1 AND due_step IS NOT NULL",
                            now)
    steps: dict[str, int] = {}
    for r in rows:
        steps[r["due_step"]] = steps.get(r["due_step"], 0) + 1
    return [str(r["id"]) for r in rows], steps


async def fired_once(conn: asyncpg.Connection, event_type: str, ids: list[str]) -> dict:
    """Every referral in `ids` must have exactly one event of `event_type` in the outbox."""
    row = await conn.fetchrow("""
        WITH ids AS (SELECT unnest($2::text[]) AS id)
        SELECT count(*) AS events, count(DISTINCT o.payload->>'referral_id') AS referrals
        FROM referral.outbox AS o JOIN ids ON o.payload->>'referral_id' = ids.id
        WHERE o.type = $1""", event_type, ids)
    return {"expected": len(ids), "referrals_with_event": row["referrals"], "events": row["events"],
            "duplicates": row["events"] - row["referrals"], "missing": len(ids) - row["referrals"]}


@dataclass(frozen=True)
class ScanSQL:
    """fire_due's SELECT as the scanner sent it, and what each of its parameters is."""

    text: str
    params: list[dict]  # {"kind": "time" | "limit"} or {"kind": "value", "value": ...}

    def args(self, now: datetime, limit: int) -> list:
        return [now if p["kind"] == "time" else limit if p["kind"] == "limit" else p["value"] for p in self.params]

    def literals(self, now: datetime, limit: int) -> str:
        """The arguments as SQL literals, for EXECUTE."""
        def literal(p: dict) -> str:
            if p["kind"] == "time":
                return f"'{now.isoformat()}'::timestamptz"
            value = limit if p["kind"] == "limit" else p["value"]
            return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"
        return ", ".join(literal(p) for p in self.params)


async def explain(conn: asyncpg.Connection, sql: ScanSQL, now: datetime, limit: int) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of the scanner's SELECT as a prepared statement, with the plan a fresh
    one gets (custom) and the one PostgreSQL may switch to after five executions (generic). Rolled back:
    FOR UPDATE locks rows."""
    out = {}
    for mode in ("custom", "generic"):
        tr = conn.transaction()
        await tr.start()
        try:
            await conn.execute(f"SET LOCAL plan_cache_mode = force_{mode}_plan")
            await conn.execute(f"PREPARE bench_scan AS {sql.text}")
            try:
                lines = [r[0] for r in await conn.fetch(
                    f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_scan({sql.literals(now, limit)})")]
            finally:
                await conn.execute("DEALLOCATE bench_scan")
        finally:
            await tr.rollback()
        out[mode] = plan_facts(lines)
    return out


def plan_facts(lines: list[str]) -> dict:
    """The plan's scan node, the top node's buffers, the rows it returned, and the execution time."""
    scan = next((ln.strip().removeprefix("->").strip() for ln in lines if " Scan " in ln or ln.lstrip("-> ")
                 .startswith(("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap"))), None)
    buffers = next((ln.strip().removeprefix("Buffers:").strip() for ln in lines if ln.strip().startswith("Buffers:")),
                   None)
    execution = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Execution Time")), None)
    return {"scan": scan, "buffers": buffers, "execution": execution,
            "uses_due_index": any("ix_referrals_due" in ln for ln in lines), "plan": lines}


# -- raw asyncpg ceilings --------------------------------------------------------------------------
RAW_UPDATE = ("UPDATE referral.referrals SET due_step = 'escalate', due_at = $2, reminded_at = $1, updated_at = $1 "
              "WHERE id = ANY($3::uuid[])")
RAW_OUTBOX = """INSERT INTO referral.outbox (id, topic, key, type, source, subject, time, payload)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
                         $8::jsonb[])"""


async def raw_drain(conn: asyncpg.Connection, sql: ScanSQL, now: datetime, limit: int, outbox: bool) -> dict:
    """The scanner's SELECT, then one UPDATE of the batch (and with `outbox`, one INSERT of an event per row
    and pg_notify, as the unit of work does), a transaction per batch, until a batch comes back empty."""
    park = now + timedelta(minutes=PARK)
    batches, steps = [], 0
    topic = event_spec_for_model(ReferralReminder).topic
    started = time.perf_counter()
    ended = started
    while True:
        s = time.perf_counter()
        async with conn.transaction():
            rows = await conn.fetch(sql.text, *sql.args(now, limit))
            if not rows:
                break
            await conn.execute(RAW_UPDATE, now, park, [r["id"] for r in rows])
            if outbox:
                at = datetime.now(UTC)
                payloads = [json.dumps({
                    "referral_id": str(r["id"]), "case_id": str(r["case_id"]), "case_number": r["case_number"],
                    "agency_unit_id": str(r["agency_unit_id"]), "agency_unit_name": "Commune Police of a commune",
                    "urgency": r["urgency"], "acknowledge_by": r["acknowledge_by"].isoformat(),
                    "escalate_at": park.isoformat(),
                    "contacts": [{"channel": "email", "address": "duty@example.gov.vn"}]}) for r in rows]
                n = len(rows)
                await conn.execute(RAW_OUTBOX, [uuid.uuid4() for _ in rows], [topic] * n,
                                   [str(r["case_id"]) for r in rows], ["bench.raw.reminder"] * n,
                                   ["/bench/raw"] * n, [r["case_number"] for r in rows], [at] * n, payloads)
                await conn.execute("SELECT pg_notify('referral_outbox', '')")
        steps += len(rows)
        ended = time.perf_counter()
        batches.append(ended - s)
    await flush_stats(conn)
    return {"steps": steps, "wall_s": round(ended - started, 3), "steps_per_s": rate(steps, ended - started),
            "batches": len(batches), "batch_ms": summary_ms(batches), "outbox": outbox}


async def raw_empty(conn: asyncpg.Connection, sql: ScanSQL, now: datetime, limit: int, count: int) -> dict:
    """The empty scan's SQL in plain asyncpg: BEGIN, the SELECT (nothing due), ROLLBACK, as the session does."""
    times = []
    for _ in range(count):
        s = time.perf_counter()
        tr = conn.transaction()
        await tr.start()
        await conn.fetch(sql.text, *sql.args(now, limit))
        await tr.rollback()
        times.append(time.perf_counter() - s)
    await flush_stats(conn)
    return {"scans": count, "ms": summary_ms(times)}


# -- the run ----------------------------------------------------------------------------------------
class Run:
    def __init__(self, args: argparse.Namespace, conn: asyncpg.Connection, meter: Meter, out: dict):
        self.args, self.conn, self.meter, self.out = args, conn, meter, out
        self.clock = T0  # the latest clock any scan ran at: everything due by it has fired

    async def empty_scans(self, label: str, scanner: Scanner, now: datetime) -> dict:
        plan = await explain(self.conn, scanner.sql, now, self.args.limit)  # first: the scan after the change
        before = await pg_stats(self.conn)
        start = self.meter.now()
        answer = await scanner.ask({"cmd": "empty", "now": now.isoformat(), "count": self.args.empty_scans})
        cpu = self.meter.delta(start, self.args.empty_scans)
        after = await pg_stats(self.conn)
        self.out["cpu"][f"empty: {label}"] = cpu
        scanner_ms = cpu["per_process"].get("scanner", {}).get("ms_per_item")
        pg_ms = cpu["per_process"].get("postgres", {}).get("ms_per_item")
        result = {"now": now.isoformat(), "scans": self.args.empty_scans, "fired": answer["fired"],
                  "ms": summary_ms([ms / 1000 for ms in answer["ms"]]), "explain": plan,
                  "scanner_cpu_ms_per_scan": scanner_ms, "postgres_cpu_ms_per_scan": pg_ms,
                  **per_item(before, after, self.args.empty_scans)}
        say(f"  empty scan ({label}): p50 {result['ms']['p50_ms']} ms, p99 {result['ms']['p99_ms']} ms; "
            f"plan: {plan['custom']['scan']}; buffers {plan['custom']['buffers']}")
        return result

    async def drain(self, label: str, scanners: list[Scanner], now: datetime, escalate_minutes: int,
                    kind: str, ids: list[str]) -> dict:
        self.clock = max(self.clock, now)
        av0 = await self.conn.fetchrow(AUTOVACUUM)
        before = await pg_stats(self.conn)
        start = self.meter.now()
        for s in scanners:  # both start within a millisecond; each times its own batches
            s.send(drain_cmd(now, escalate_minutes, self.args.limit))
        answers = [await s.read() for s in scanners]
        d = drain_summary(answers, len(ids), kind)
        cpu = self.meter.delta(start, d["steps"])
        after = await pg_stats(self.conn)
        av1 = await self.conn.fetchrow(AUTOVACUUM)
        d |= per_item(before, after, d["steps"]) | {"now": now.isoformat(), "autovacuum_runs": av1[0] - av0[0],
                                                    "autoanalyze_runs": av1[1] - av0[1]}
        d["once"] = await fired_once(self.conn, REMINDER if kind == "remind" else ESCALATED, ids)
        d["as_expected"] = (d[{"remind": "reminders", "escalate": "escalations"}[kind]] == len(ids) == d["steps"]
                            and not d["once"]["duplicates"] and not d["once"]["missing"])
        self.out["cpu"][label] = cpu
        say(f"  {label}: {d['steps']} steps in {d['wall_s']} s = {d['steps_per_s']} steps/s; batch p50 "
            f"{d['batch_ms']['p50_ms']} ms; errors {len(d['errors'])}; exactly once: {d['as_expected']}")
        return d

    async def burst(self, label: str, scanners: list[Scanner], settler: Scanner, k: int) -> dict:
        """k reminders (or a few more: a case's referrals share a deadline), then their escalations, each
        drained by `scanners` at its own clock."""
        now = await due_clock(self.conn, k)
        ids, steps = await due_ids(self.conn, now)
        if set(steps) != {"remind"} or steps["remind"] < k:
            raise RuntimeError(f"{label}: expected {k} reminders due at {now}, found {steps}")
        remind = await self.drain(f"{label}: remind", scanners, now, FAST, "remind", ids)
        at = now + timedelta(minutes=FAST)
        # Reminders that fall due within the minute go first, untimed, their escalations a year away.
        settled = await settler.ask(drain_cmd(at - EPSILON, PARK, self.args.limit))
        esc_ids, steps = await due_ids(self.conn, at)
        if steps != {"escalate": len(ids)} or set(esc_ids) != set(ids):
            raise RuntimeError(f"{label}: expected the {len(ids)} escalations due at {at}, found {steps}")
        escalate = await self.drain(f"{label}: escalate", scanners, at, FAST, "escalate", ids)
        escalate["made_referrals"] = await self.conn.fetchval(
            "SELECT count(*) FROM referral.referrals WHERE cause = 'escalation' "
            "AND previous_referral_id = ANY($1::uuid[])", ids)
        return {"size": len(ids), "requested": k, "remind": remind, "escalate": escalate,
                "settled_between": settled["reminders"] + settled["escalations"]}

    async def raw(self, label: str, k: int, sql: ScanSQL, outbox: bool) -> dict:
        now = await due_clock(self.conn, k)
        self.clock = max(self.clock, now)
        expected = len((await due_ids(self.conn, now))[0])
        before = await pg_stats(self.conn)
        start = self.meter.now()
        d = await raw_drain(self.conn, sql, now, self.args.limit, outbox)
        cpu = self.meter.delta(start, d["steps"])
        after = await pg_stats(self.conn)
        self.out["cpu"][label] = cpu
        d |= per_item(before, after, d["steps"], own_xacts=2) | {"expected": expected}  # + the flush's own
        say(f"  {label}: {d['steps']} steps in {d['wall_s']} s = {d['steps_per_s']} steps/s")
        return d


async def measure(stack: Stack, args: argparse.Namespace, logs: Path, profile_out: Path) -> dict:
    admin = asyncpg_dsn(stack.database_url)
    out: dict = {"machine": machine.facts(await fetchval(admin, "SHOW server_version")), "cpu": {}}
    url, dsn = await create_database(admin, stack.database_url)
    conn: asyncpg.Connection | None = None
    scanners: list[Scanner] = []
    try:
        say("referral's migrations and the directory seed, in a database of the bench's own")
        await asyncio.to_thread(migrations.upgrade, REPO_ROOT / "services/referral/migrations", url, "referral")
        from services.referral.directory.seed import seed
        out["directory_units"] = await seed(url)
        conn = await asyncpg.connect(dsn)
        say(f"load: {args.referrals:,} open referrals (reminders over {args.window_hours} h after T0) and "
            f"{args.acknowledged:,} acknowledged ones")
        out["load"] = ld = await load(conn, url, args)
        say(f"  {ld['rows']:,} rows over {ld['units']:,} units and {ld['provinces']} provinces "
            f"(matching {ld['matching_s']} s, INSERT {ld['insert_s']} s, VACUUM {ld['vacuum_s']} s); "
            f"table {ld['table_and_indexes_mb']} MB with indexes, ix_referrals_due {ld['due_index_mb']} MB")

        pids = {k: v for k, v in machine.stack_pids(stack).items() if k == "postgres"}
        one = await Scanner(url, logs / "scanner-1.log", "scanner").start()
        scanners.append(one)
        meter = Meter(pids | {"scanner": one.pid})
        r = Run(args, conn, meter, out)
        out["scanner_sql"] = one.sql.text
        out["empty"] = {}

        say(f"empty scan: {args.empty_scans} scans at T0, nothing due")
        out["empty"]["fresh"] = await r.empty_scans("fresh", one, T0)
        if not args.skip_ceilings:
            out.setdefault("ceilings", {})["raw_empty"] = await raw_empty(conn, one.sql, T0, args.limit,
                                                                          args.empty_scans)

        out["bursts"] = []
        for i, k in enumerate(args.bursts):
            say(f"burst: {k} reminders then their escalations, one scanner")
            if i == len(args.bursts) - 1:  # the plan of a full batch, at the largest burst's clock
                out["explain_burst"] = await explain(conn, one.sql, await due_clock(conn, k), args.limit)
            out["bursts"].append(await r.burst(f"1 scanner, {k:,}", [one], one, k))

        if args.concurrent_burst:
            k = args.concurrent_burst
            say(f"two scanner processes: {k} reminders then their escalations")
            two = await Scanner(url, logs / "scanner-2.log", "scanner 2").start()
            scanners.append(two)
            meter.pids["scanner 2"] = two.pid
            out["concurrent"] = await r.burst(f"2 scanners, {k:,}", [one, two], one, k)
            await two.stop()
            del meter.pids["scanner 2"]

        if args.profile_burst:
            k = args.profile_burst
            say(f"profile: py-spy on the scanner (pid {one.pid}), {k} reminders then their escalations")
            out["profile"] = await profile(r, one, k, profile_out)

        if not args.skip_ceilings:
            c = out.setdefault("ceilings", {})
            say(f"ceiling: the scanner's SELECT + one UPDATE per batch in plain asyncpg, {args.raw_burst} steps")
            c["raw"] = await r.raw("raw SELECT + UPDATE", args.raw_burst, one.sql, outbox=False)
            say(f"ceiling: the same + outbox rows and pg_notify, {args.raw_burst} steps")
            c["raw_outbox"] = await r.raw("raw + outbox", args.raw_burst, one.sql, outbox=True)

        after = r.clock  # nothing is due by it; every timer moved so far had its index entry at or before it
        say("empty scan again, after the bursts (moved timers leave dead index entries until VACUUM)")
        out["dead_tuples_before_vacuum"] = (await conn.fetchrow(AUTOVACUUM))[2]
        out["empty"]["after bursts"] = await r.empty_scans("after bursts", one, after)
        await conn.execute("VACUUM referral.referrals")
        out["empty"]["after VACUUM"] = await r.empty_scans("after VACUUM", one, after)
        out["sizes_at_end"] = dict(zip(("heap_mb", "table_and_indexes_mb", "due_index_mb"),
                                       (round(x / 2**20, 2) for x in await conn.fetchrow(SIZES)), strict=True))
        out["open_at_end"] = await conn.fetchval("SELECT count(*) FROM referral.referrals WHERE due_step IS NOT NULL")
        for s in scanners:
            await s.stop()

        if not args.skip_ceilings:
            c = out["ceilings"]
            c["pgbench"] = []
            await ceilings.create_scratch(dsn)
            try:
                for clients in args.pgbench_clients:
                    say(f"ceiling: pgbench 1-row INSERT, -c {clients}, {args.pgbench_seconds} s")
                    c["pgbench"].append(ceilings.pgbench(dsn, clients, args.pgbench_seconds))
            finally:
                await ceilings.drop_scratch(dsn)
    finally:
        for s in scanners:
            await s.stop()
        if conn is not None:
            await conn.close()
        await drop_database(admin, dsn)
    return out


async def profile(r: Run, scanner: Scanner, k: int, out: Path) -> dict:
    """The scanner under py-spy: a reminder burst and its escalations, each in a file of its own."""
    result, at = {}, None  # `at`: when the reminded burst escalates (set after the first kind)
    for kind in ("remind", "escalate"):
        path = out.with_name(out.name.replace(".txt", f"-{kind}.txt"))
        now = await due_clock(r.conn, k) if kind == "remind" else at
        r.clock = max(r.clock, now)
        if kind == "escalate":
            await scanner.ask(drain_cmd(now - EPSILON, PARK, r.args.limit))
        t0 = time.perf_counter()
        with Recorder(scanner.pid, path):
            answer = await scanner.ask(drain_cmd(now, FAST, r.args.limit))
        wall = time.perf_counter() - t0
        d = drain_summary([answer], k, kind)
        result[kind] = {"file": str(path.relative_to(REPO_ROOT)), "steps": d["steps"], "steps_per_s": d["steps_per_s"],
                        "scanner_cpu_pct_of_one_core": round(100 * answer["cpu_s"] / wall, 1),
                        **summarise(path), "focus": focus(path)}
        at = now + timedelta(minutes=FAST)
    return result


# What the scanner's time goes to, by what the code does: (label, test on one frame's function and file).
FOCUS = (
    ("fire_due, inclusive (what py-spy shows under it)", lambda f, p: f == "fire_due"),
    ("a reminder: UPDATE + ReferralReminder (_remind)", lambda f, p: f == "_remind"),
    ("an escalation: UPDATE, ladder, new referral, events (_escalate)", lambda f, p: f == "_escalate"),
    ("  the new referral one level up (create_referral)", lambda f, p: f == "create_referral"),
    ("  the signed acknowledge link (AckLinks.ack_link)", lambda f, p: f == "AckLinks.ack_link" or f == "ack_link"),
    ("unit of work commit: outbox rows, NOTIFY, COMMIT (UnitOfWork.commit)", lambda f, p: f == "UnitOfWork.commit"),
    ("directory version check (DirectoryCache.current)", lambda f, p: f == "DirectoryCache.current"),
    ("pydantic: events built and dumped (any frame)", lambda f, p: p.startswith("pydantic")),
    ("asyncpg (any frame)", lambda f, p: p.startswith("asyncpg/")),
)


FIRE_DUE_ALONE = "  fire_due itself: its SELECT, the rows, the loop (no step, commit or directory frame)"
STEP_FUNCTIONS = {"_remind", "_escalate", "UnitOfWork.commit", "DirectoryCache.current"}


def _fire_due_alone(frames: list[tuple[str, str]]) -> bool:
    names = {f for f, _ in frames}
    return "fire_due" in names and not names & STEP_FUNCTIONS


def focus(raw: Path) -> list[dict]:
    """bench.profile.focus over FOCUS, with fire_due's own share second, beside fire_due inclusive."""
    rows = shares_of(raw, FOCUS, ((FIRE_DUE_ALONE, _fire_due_alone),))
    rows.insert(1, rows.pop(len(FOCUS)))
    return rows


def start_postgres_only(stack: Stack) -> None:
    """Durable PostgreSQL, as Infra.start would start it, without the broker: nothing here produces to
    Kafka (no relay runs: the outbox rows stay), and an idle broker costs CPU."""
    infra = stack.infra
    if infra.env.get("DATABASE_URL"):
        infra.database_url = infra.env["DATABASE_URL"]
    else:
        infra.postgres = EmbeddedPostgres(infra.data_dir, infra.ports.postgres, fast=infra.fast)
        infra.database_url = infra.postgres.start(DATABASE)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    check_local()
    if args.profile_burst and py_spy_path() is None:
        sys.exit("bench deadlines: py-spy not found; `.venv/bin/pip install -e '.[bench]'` or pass --no-profile")
    started = datetime.now(UTC)
    stamp = "deadlines-" + started.strftime("%Y%m%dT%H%M%SZ")
    report.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profile_out = report.RESULTS_DIR / f"{stamp}-pyspy.txt"
    try:
        with fresh_stack() as (stack, logs):
            logs.mkdir(parents=True, exist_ok=True)
            say("starting durable PostgreSQL alone (no broker, no services)")
            start_postgres_only(stack)
            results = run(measure(stack, args, logs, profile_out))
    except KeyboardInterrupt:
        say("interrupted; stopping")
        return 130
    results |= {"started_at": started.isoformat(), "command": " ".join(["python -m bench deadlines", *argv]),
                "args": vars(args), "t0": T0.isoformat()}
    return report.publish(results, deadlines_report.render(results), stamp)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
