"""`python -m bench notify`: messages per second through notify with a simulated provider latency of 200 ms,
and emergency latency while a backlog of 10,000 normal messages drains (issue 5), beside ceilings measured in
the same run.

1. Durable PostgreSQL, the broker, every migration, then notify alone with the SMTP sink and the local SMS
   gateway; no referral: the bench produces what referral's relay would. The gateway answers every send
   after --provider-latency-ms (POST /control). Each ReferralCreated goes straight to referral.referrals.v1
   (CloudEvents binary mode, key = case id) with one contact of its own: a fictitious +8400000xxxxx number
   (the dev stack lets those through to the gateway) or an address at agencies.hotline111.example (to the
   SMTP sink). One contact each, so the per-recipient rate limit never applies.
2. Throughput: --messages SMS, from the first produce until the dispatcher has recorded the last one "sent"
   (polling notify's inbox and its due index), split into the consumer (event -> row) and the dispatcher
   (row -> sent) from the rows' own timestamps; then --emails emails the same way.
3. Emergency under backlog: a backlog forms the way it would in service, behind a slow provider. The gateway
   answers after --hold-ms (4 s, under the adapters' 5 s timeout) while --backlog normal SMS events and
   then --behind emergencies right behind them on the topic are produced, and the consumer makes their rows
   (the dispatcher sends a batch every 4 s meanwhile: the consumer alone would keep pace with the rate
   limit, and no backlog would form). Then the gateway is back to --provider-latency-ms, and --emergencies
   emergencies are produced, one every --interval s, while the backlog drains: each one's time from produce
   to its SMS at the gateway (the gateway's receive time), and how many normal messages were still queued
   at that moment.
4. Once every emergency is at the gateway, notify is restarted with its provider rate limit lifted
   (--lifted-rate): the dispatcher alone drains the rest of the backlog (the consumer has nothing to do), at
   200 ms per send with the token bucket out of the way. Then --lifted-messages SMS through the whole pipeline
   again, with the limit still lifted (consumer and dispatcher sharing the process).
5. A last batch (--profile-messages, limit lifted) under py-spy on notify: where its CPU per message goes.
6. Ceilings, notify stopped: the gateway alone (raw httpx, NOTIFY_BATCH_SIZE sends in flight, the same
   latency), the SMTP sink alone (raw aiosmtplib, as many in flight), pgbench single-row INSERTs, the same
   records produced and consumed raw.

Prints one table and writes bench/results/notify-<UTC>.json (and the py-spy stacks beside it).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import itertools
import os
import re
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
import asyncpg
import httpx

from bench import ceilings, machine, notify_report, report
from bench.common import (
    add_pgbench_args, apply_profiles, check_local, fetchval, fresh_stack, new_parser, pg_counters, run, say,
)
from bench.matching import _machine_busy, _with_others, kafka_ceiling
from bench.profile import Recorder, focus, py_spy_path, summarise
from bench.stats import percentile, rate, summary_ms
from devstack.stack import Stack, prepare, start_services
from runtime.cloudevents import Envelope
from runtime.db import asyncpg_dsn
from runtime.kafka import new_producer
from schemas import event_spec_for_model
from schemas.catalog import CATALOG
from schemas.events.common import Urgency
from schemas.events.referrals import AgencyContact, ReferralCreated
from schemas.geography import communes
from schemas.vocab import Exploitation

TOPIC = "referral.referrals.v1"
SOURCE = "/hotline111/referral"  # what referral's outbox stamps on its events
SMS_PREFIX, SMS_NUMBERS = "+8400000", 100_000  # the seed directory's fictitious range (notify lets it through)
EMAIL_DOMAIN = "agencies.hotline111.example"  # RFC 2606: can never reach anyone
ACK_TOKEN_BYTES = 57  # about the length of referral's signed acknowledge links (76 characters of base64)
# Polled while notify works: one inbox row per event (committed with its notifications), and the dispatcher's
# partial index (status created or sending), so neither poll reads the wide notification rows.
INGESTED = "SELECT count(*) FROM notify.inbox"
PENDING = "SELECT count(*) FROM notify.notifications WHERE status IN ('created', 'sending')"
ROWS = """SELECT id, source_id, channel, recipient, status, priority, extract(epoch FROM created_at)::float8 AS created,
                 extract(epoch FROM sent_at)::float8 AS sent, extract(epoch FROM delivered_at)::float8 AS delivered
          FROM notify.notifications WHERE source_id = ANY($1::uuid[])"""
SENT_OF = "SELECT count(*) FROM notify.notifications WHERE source_id = ANY($1::uuid[]) AND sent_at IS NOT NULL"
DELIVERED_OF = "SELECT count(*) FROM notify.notifications WHERE source_id = ANY($1::uuid[]) AND status = 'delivered'"
OUTBOX_SEQ = "SELECT coalesce(max(seq), 0) FROM notify.outbox"
# Status events notify emitted since `seq`: a deferred message (rate limit) is claimed again, and each claim
# of a message with no attempt recorded emits "sending" again.
OUTBOX_SINCE = """SELECT payload->>'status' AS status, count(*) AS n, count(*) FILTER (WHERE published_at IS NULL) AS unpub
                  FROM notify.outbox WHERE seq > $1 GROUP BY 1"""
# How many times each notification was claimed: every claim of a message with no attempt recorded emits
# "sending", and a message the rate limit deferred goes back with none.
CLAIMS_OF = """SELECT payload->>'notification_id' AS nid, count(*) AS n FROM notify.outbox
               WHERE seq > $1 AND payload->>'status' = 'sending' AND payload->>'notification_id' = ANY($2::text[])
               GROUP BY 1"""
SENT_STATES = ("sent", "delivered")
LIFTED = "lifted"

# (quick, default)
PROFILES = {
    "messages": (500, 3000),
    "emails": (300, 1000),
    "backlog": (2000, 10_000),
    "behind": (1, 3),
    "emergencies": (5, 20),
    "interval": (1.0, 2.0),
    "hold_ms": (4000, 4000),
    "lifted_rate": (100_000.0, 100_000.0),
    "lifted_messages": (500, 3000),
    "profile_messages": (300, 1000),
    "warmup": (20, 20),
    "idle_seconds": (2.0, 5.0),
    "provider_latency_ms": (200, 200),
    "gateway_requests": (1000, 3000),
    "smtp_requests": (300, 1000),
    "drain_timeout": (300.0, 600.0),
    "pgbench_seconds": (3, 8),
    "pgbench_clients": ((1, 8), (1, 8)),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = new_parser("python -m bench notify", __doc__)
    p.add_argument("--quick", action="store_true", help="small N, a backlog of 2,000 (smoke run, ~3 minutes)")
    p.add_argument("--messages", type=int, help="SMS in the throughput test (default 3000)")
    p.add_argument("--emails", type=int, help="emails in the email throughput test (default 1000; 0 skips it)")
    p.add_argument("--backlog", type=int, help="normal SMS queued before the emergencies (default 10000)")
    p.add_argument("--behind", type=int, help="emergencies produced right behind the backlog on the topic (3)")
    p.add_argument("--emergencies", type=int, help="emergencies produced while the backlog drains (default 20)")
    p.add_argument("--interval", type=float, help="seconds between two of those emergencies (default 2)")
    p.add_argument("--hold-ms", type=int, help="the gateway's answer time while the backlog is made (4000; under "
                                               "the adapters' 5 s timeout): the provider slows down, a backlog forms")
    p.add_argument("--lifted-rate", type=float, help="NOTIFY_PROVIDER_RATE_PER_S (and burst) after the emergencies: "
                                                     "notify restarted with it (100000; 0: no restart)")
    p.add_argument("--lifted-messages", type=int, help="SMS in the lifted run (default 3000; 0 skips it)")
    p.add_argument("--profile-messages", type=int, help="SMS of a last batch (limit lifted) with py-spy on notify "
                                                        "(default 1000); --no-profile skips it")
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy batch")
    p.add_argument("--warmup", type=int, help="events (half SMS, half email) before the measured phases (20)")
    p.add_argument("--idle-seconds", type=float, help="seconds with no load, for the stack's idle CPU (5)")
    p.add_argument("--provider-latency-ms", type=int, help="the gateway's answer time for every send (200)")
    p.add_argument("--gateway-requests", type=int, help="sends of the raw gateway ceiling (default 3000)")
    p.add_argument("--smtp-requests", type=int, help="emails of the raw SMTP sink ceiling (default 1000)")
    p.add_argument("--drain-timeout", type=float, help="seconds to wait for a phase's last message (600)")
    add_pgbench_args(p)
    p.add_argument("--notify-env", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting for notify in every phase, e.g. NOTIFY_BATCH_SIZE=100 (repeatable)")
    p.add_argument("--skip-ceilings", action="store_true", help="only the pipeline figures")
    args = p.parse_args(argv)
    apply_profiles(args, PROFILES)
    if args.no_profile or not args.lifted_rate:
        args.profile_messages = 0
    for item in args.notify_env:
        if "=" not in item:
            p.error(f"--notify-env wants NAME=VALUE, not {item!r}")
    numbers = (2 * args.warmup + args.messages + args.backlog + args.behind + args.emergencies + args.lifted_messages
               + args.profile_messages)
    if numbers > SMS_NUMBERS:
        p.error(f"the phases need {numbers:,} distinct SMS numbers; the fictitious range has {SMS_NUMBERS:,}")
    return args


# -- the events ----------------------------------------------------------------------------------
def sms_number(i: int) -> str:
    """The i-th fictitious number: +8400000 and five digits, a range no real number uses."""
    if not 0 <= i < SMS_NUMBERS:
        raise ValueError(f"no fictitious SMS number {i}")
    return f"{SMS_PREFIX}{i:05d}"


def email_address(i: int) -> str:
    return f"bench-{i:06d}@{EMAIL_DOMAIN}"


PLACES = sorted(communes().items())  # (commune code, (name, province code)), in code order


def referral_created(i: int, *, urgency: Urgency, sms: str | None = None, email: str | None = None,
                     now: datetime | None = None) -> ReferralCreated:
    """A ReferralCreated to a commune's police, as referral emits it, with the given contacts only."""
    now = now or datetime.now(UTC)
    commune, (name, province) = PLACES[i % len(PLACES)]
    contacts = [AgencyContact(channel="sms", address=sms)] if sms else []
    contacts += [AgencyContact(channel="email", address=email)] if email else []
    token = base64.urlsafe_b64encode(os.urandom(ACK_TOKEN_BYTES)).decode()
    hours = {Urgency.emergency: 1, Urgency.high: 4}.get(urgency, 24)
    return ReferralCreated(
        referral_id=uuid.uuid4(), case_id=uuid.uuid4(), case_number=f"111-2026-{i + 1:06d}",
        agency_unit_id=uuid.uuid4(), agency_unit_name=f"Công an {name}", agency_kind="police_commune",
        province_code=province, urgency=urgency, acknowledge_by=now + timedelta(hours=hours),
        match_reason="commune police of the case's commune", contacts=contacts, rule_ids=["commune-police"],
        agency_level="commune", ack_url=f"http://127.0.0.1:8002/ack/{token}", commune_code=commune,
        exploitation=[list(Exploitation)[i % len(Exploitation)]], language="vi")


def record(payload: ReferralCreated, now: datetime | None = None) -> tuple[bytes, bytes, list[tuple[str, bytes]], str]:
    """(key, value, headers, event id) as referral's relay produces it: CloudEvents binary mode, key = case id."""
    spec = event_spec_for_model(ReferralCreated)
    event_id = uuid.uuid4()
    headers = Envelope(event_id, SOURCE, spec.type, now or datetime.now(UTC), None, b"").headers()
    return str(payload.case_id).encode(), payload.model_dump_json().encode(), headers, str(event_id)


# -- aggregations (pure) ---------------------------------------------------------------------------
def steady_rate(times: list[float], lo: float = 0.1, hi: float = 0.9) -> float | None:
    """Items per second over the middle of sorted event times (the 10th to the 90th percentile): the pace once
    started, without the token bucket's initial burst or the last stragglers."""
    if len(times) < 10:
        return None
    i, j = int(lo * (len(times) - 1)), int(hi * (len(times) - 1))
    return rate(j - i, times[j] - times[i])


def window_rate(times: list[float], start: float, end: float) -> float | None:
    """Items per second with a time in [start, end], from sorted times."""
    if end <= start:
        return None
    return rate(bisect.bisect_right(times, end) - bisect.bisect_left(times, start), end - start)


def still_queued(created: list[float], sent: list[float], t: float) -> int:
    """Messages created by t and not sent by t, from the sorted creation and send times."""
    return bisect.bisect_right(created, t) - bisect.bisect_right(sent, t)


def summary_p95(seconds: list[float]) -> dict:
    """n, p50, p95, max in milliseconds (nearest rank)."""
    ms = [s * 1000 for s in seconds]
    r = lambda x: None if x is None else round(x, 1)  # noqa: E731
    return {"n": len(ms), "p50_ms": r(percentile(ms, 50)), "p95_ms": r(percentile(ms, 95)),
            "max_ms": r(max(ms) if ms else None)}


def phase_summary(rows: list[dict], t0: float, expected: int) -> dict:
    """What one phase's notification rows say, times in seconds since the first produce (t0, epoch):
    consumer (every row made), dispatcher (every message sent), and the time each waited in between."""
    created = sorted(r["created"] for r in rows)
    sent = sorted(r["sent"] for r in rows if r["sent"] is not None)
    delivered = sorted(r["delivered"] for r in rows if r["delivered"] is not None)
    statuses = Counter(r["status"] for r in rows)
    last_row = created[-1] - t0 if created else None
    last_sent = sent[-1] - t0 if sent else None
    return {
        "messages": expected, "rows": len(rows), "sent": len(sent), "statuses": dict(sorted(statuses.items())),
        "not_sent": expected - sum(statuses.get(s, 0) for s in SENT_STATES),
        "rows_done_s": _r3(last_row), "consumer_rate_per_s": rate(len(rows), last_row) if last_row else None,
        "first_sent_s": _r3(sent[0] - t0 if sent else None), "all_sent_s": _r3(last_sent),
        "rate_per_s": rate(len(sent), last_sent) if last_sent else None,
        "dispatch_rate_per_s": rate(len(sent), sent[-1] - sent[0]) if len(sent) > 1 else None,
        "steady_rate_per_s": steady_rate(sent),
        "queue_wait": summary_ms([r["sent"] - r["created"] for r in rows if r["sent"] is not None]),
        "delivered": len(delivered), "last_delivered_s": _r3(delivered[-1] - t0 if delivered else None),
    }


def emergency_summary(items: list[dict], backlog_created: list[float], backlog_sent: list[float]) -> dict:
    """Each emergency's produce -> SMS at the gateway, split at its row's creation, and the normal messages
    still queued when it reached the gateway. `items`: produced, created, sent, gateway (epoch s or None)."""
    done = [e for e in items if e.get("gateway") is not None and e.get("created") is not None]
    queued = [still_queued(backlog_created, backlog_sent, e["gateway"]) for e in done]
    return {
        "emergencies": len(items), "at_gateway": len(done),
        "produce_to_gateway": summary_p95([e["gateway"] - e["produced"] for e in done]),
        "produce_to_row": summary_p95([e["created"] - e["produced"] for e in done]),
        "row_to_gateway": summary_p95([e["gateway"] - e["created"] for e in done]),
        "queued_at_gateway": queued,
        "queued": {"min": min(queued, default=None), "p50": percentile(queued, 50), "max": max(queued, default=None)},
        "claims": sorted(e["claims"] for e in done if e.get("claims") is not None),
    }


def outbox_summary(rows: list[dict], messages: int) -> dict:
    """Status events per message ("sending" more than once: the message was deferred and claimed again)."""
    by = {r["status"]: r["n"] for r in rows}
    per = {k: round(v / messages, 2) for k, v in sorted(by.items())} if messages else {}
    return {"events": by, "per_message": per, "unpublished": sum(r["unpub"] for r in rows),
            "claims_again_per_message": round(max(0, by.get("sending", 0) - messages) / messages, 2)
            if messages else None}


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text format: {(name, sorted labels): value}; comments and unparsable lines skipped."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = value
    return out


def metric(samples: dict, name: str, **labels: str) -> float:
    """The sum of `name` over the series carrying every label given."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def send_stats(before: dict, after: dict, channel: str) -> dict:
    """Provider calls in a phase, from notify's own histogram and counter: count, mean time, verdicts."""
    d = lambda name, **kw: metric(after, name, **kw) - metric(before, name, **kw)  # noqa: E731
    calls = d("notify_send_seconds_count", channel=channel)
    verdicts = {v: int(d("notify_send_attempts_total", channel=channel, verdict=v))
                for v in ("accepted", "delivered", "retry", "permanent")}
    return {"calls": int(calls), "mean_ms": round(1000 * d("notify_send_seconds_sum", channel=channel) / calls, 1)
            if calls else None, "verdicts": {k: v for k, v in verdicts.items() if v}}


def _r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def steady_window(polls: list[float], sent: list[float], lo: float = 0.1, hi: float = 0.9) -> tuple | None:
    """The two polls that bracket the middle of the sends (from the lo-th to the hi-th), as indexes into the
    sorted poll times, and the sends between them: where to take a steady phase's CPU."""
    if len(sent) < 10:
        return None
    a, b = sent[int(lo * (len(sent) - 1))], sent[int(hi * (len(sent) - 1))]
    i, j = bisect.bisect_left(polls, a), bisect.bisect_right(polls, b) - 1
    if i >= j:
        return None
    return i, j, bisect.bisect_right(sent, polls[j]) - bisect.bisect_right(sent, polls[i])


async def poll(conn: asyncpg.Connection, sql: str, args: tuple, done, started: float, timeout: float, what: str,
               interval: float = 0.25, tick=None) -> tuple[float | None, int]:
    """Poll `sql` until done(value): (seconds since `started`, last value); None for the seconds on timeout.
    tick(), if given, runs at each poll."""
    last_say = time.perf_counter()
    while True:
        if tick is not None:
            tick()
        value = await conn.fetchval(sql, *args)
        now = time.perf_counter()
        if done(value):
            return round(now - started, 3), value
        if now - started > timeout:
            return None, value
        if now - last_say > 10:
            say(f"  ... {what}: {value}")
            last_say = now
        await asyncio.sleep(interval)


# Where notify's time goes, by what the code does: (label, test on a frame's function and short path).
FOCUS = (
    ("consumer: a referral event -> its rows (referral_handlers' handle)",
     lambda f, p: f.endswith("handle") and p.endswith("notifications/handlers.py")),
    ("  rendering the template (render)", lambda f, p: f == "render" and p.endswith("templates/rendering.py")),
    ("dispatcher: the claim (Dispatcher.claim)", lambda f, p: f.endswith("claim") and p.endswith("dispatcher.py")),
    ("dispatcher: one send (Dispatcher.deliver), inclusive",
     lambda f, p: f.endswith("deliver") and p.endswith("dispatcher.py")),
    ("  the provider call (GenericSmsProvider.send)", lambda f, p: f.endswith("send") and p.endswith("sms/generic.py")),
    ("  recording the answer (Dispatcher._record)", lambda f, p: f.endswith("_record") and p.endswith("dispatcher.py")),
    ("receipts: the gateway's callbacks (sms_receipt)", lambda f, p: f.endswith("sms_receipt")),
    ("outbox relay (runtime/relay.py)", lambda f, p: p == "runtime/relay.py"),
    ("unit of work commit (UnitOfWork.commit)", lambda f, p: f.endswith("commit") and p == "runtime/uow.py"),
    ("Kafka client: fetch, produce (aiokafka, any frame)", lambda f, p: p.startswith("aiokafka/")),
    ("HTTP server: a request in uvicorn, starlette, fastapi (any frame)",
     lambda f, p: p.startswith(("uvicorn/protocols/", "uvicorn/middleware/", "starlette/", "fastapi/"))),
    ("HTTP client: httpx, httpcore (any frame)", lambda f, p: p.startswith(("httpx/", "httpcore/"))),
    ("SQLAlchemy (any frame)", lambda f, p: p.startswith("sqlalchemy/")),
    ("asyncpg (any frame)", lambda f, p: p.startswith("asyncpg/")),
    ("OpenTelemetry (any frame)", lambda f, p: p.startswith("opentelemetry/")),
    ("logging: structlog (any frame)", lambda f, p: p.startswith("structlog/")),
    ("pydantic (any frame)", lambda f, p: p.startswith("pydantic")),
)


# -- the run -----------------------------------------------------------------------------------------
def notify_setting(name: str, default, env: dict[str, str]):
    """A notify setting as the process will see it: --notify-env or the environment over the default."""
    raw = env.get(name.upper(), os.environ.get(name.upper()))
    return type(default)(raw) if raw is not None else default


def start_notify_only(stack: Stack) -> None:
    """Infra, every migration and the directory seed (devstack's prepare), then notify alone (with the SMTP
    sink and the SMS gateway that start_services always starts)."""
    stack.infra.start()
    prepare(stack.database_url, stack.bootstrap, extra_env=stack.extra_env)
    stack.services = start_services(
        stack.database_url, stack.bootstrap, stack.ports, pii_keys=stack.pii_keys, log_dir=stack.log_dir,
        extra_env=stack.extra_env, ready_timeout=stack.ready_timeout, names=("notify",),
        auth_secret=stack.auth_secret, pii_hmac_key=stack.pii_hmac_key)


class Run:
    def __init__(self, stack: Stack, args: argparse.Namespace, conn: asyncpg.Connection, producer, http):
        self.stack, self.args, self.conn, self.producer, self.http = stack, args, conn, producer, http
        self.numbers = itertools.count()  # every SMS number and email address is used once
        self.cases = itertools.count()
        self.out: dict = {"cpu": {}}
        self.pids = self._pids()

    def _pids(self) -> dict[str, int]:
        pids = machine.stack_pids(self.stack)
        pids["sms gateway"] = self.stack.services.pid("sms")
        return pids

    def events(self, n: int, channel: str, urgency: Urgency = Urgency.normal) -> list[tuple]:
        now = datetime.now(UTC)
        out = []
        for _ in range(n):
            k = next(self.numbers)
            contact = {"sms": sms_number(k)} if channel == "sms" else {"email": email_address(k)}
            out.append(record(referral_created(next(self.cases), urgency=urgency, now=now, **contact), now))
        return out

    async def produce(self, recs: list[tuple]) -> float:
        """Send every record as fast as one producer with the relay's settings can; the seconds it took."""
        started = time.perf_counter()
        futures = [await self.producer.send(TOPIC, value=v, key=k, headers=h) for k, v, h, _ in recs]
        await asyncio.gather(*futures)
        return time.perf_counter() - started

    async def metrics(self) -> dict:
        resp = await self.http.get(f"{self.stack.url('notify')}/metrics")
        resp.raise_for_status()
        return parse_prometheus(resp.text)

    async def rows(self, recs: list[tuple]) -> list[dict]:
        return [dict(r) for r in await self.conn.fetch(ROWS, [uuid.UUID(r[3]) for r in recs])]

    async def wait_drained(self, ingested0: int, n_events: int, started: float, what: str) -> tuple:
        """Poll until the consumer has taken every event and nothing is due: (ingest s, drain s) by the polls."""
        ingest_s, got = await poll(self.conn, INGESTED, (), lambda v: v >= ingested0 + n_events, started,
                                   self.args.drain_timeout, f"{what}: events taken by the consumer")
        if ingest_s is None:
            raise RuntimeError(f"{what}: the consumer took {got - ingested0} of {n_events} events")
        drained_s, left = await poll(self.conn, PENDING, (), lambda v: v == 0, started, self.args.drain_timeout,
                                     f"{what}: messages not sent yet")
        if drained_s is None:
            raise RuntimeError(f"{what}: {left} messages still due after {self.args.drain_timeout} s")
        return ingest_s, drained_s

    async def phase(self, label: str, recs: list[tuple], channel: str) -> dict:
        """Produce a batch; time until every message is sent; what the rows, metrics and counters say."""
        n = len(recs)
        dsn = asyncpg_dsn(self.stack.database_url)
        ingested0, seq0 = await self.conn.fetchval(INGESTED), await self.conn.fetchval(OUTBOX_SEQ)
        pg0, m0 = await pg_counters(dsn), await self.metrics()
        cpu0, busy0 = machine.cpu_seconds(self.pids), _machine_busy()
        started, t0 = time.perf_counter(), time.time()
        produce_s = await self.produce(recs)
        ingest_s, drained_s = await self.wait_drained(ingested0, n, started, label)
        wall = time.perf_counter() - started
        cpu = _with_others(machine.cpu_delta(cpu0, machine.cpu_seconds(self.pids), wall, n), _machine_busy() - busy0)
        self.out["cpu"][label] = cpu
        ids = [uuid.UUID(r[3]) for r in recs]
        if channel == "sms":  # receipts come after "sent": wait for them (a short while) before the counters
            await poll(self.conn, DELIVERED_OF, (ids,), lambda v: v >= n, time.perf_counter(), 15, "receipts")
        s = phase_summary(await self.rows(recs), t0, n)
        pg1, m1 = await pg_counters(dsn), await self.metrics()
        s |= {"channel": channel, "produce_s": round(produce_s, 3), "polled_ingest_s": ingest_s,
              "polled_drained_s": drained_s, "sends": send_stats(m0, m1, channel),
              "pg_transactions_per_message": round((pg1[0] - pg0[0]) / n, 1),
              "pg_wal_fsyncs_per_message": round((pg1[1] - pg0[1]) / n, 1) if pg1[1] is not None else None,
              "outbox": outbox_summary([dict(r) for r in await self.conn.fetch(OUTBOX_SINCE, seq0)], n)}
        say(f"  {label}: {s['sent']} of {n} sent after {s['all_sent_s']} s = {s['rate_per_s']}/s (steady "
            f"{s['steady_rate_per_s']}/s); every row after {s['rows_done_s']} s; not sent {s['not_sent']}")
        return s

    async def warm_up(self) -> None:
        n = self.args.warmup
        recs = self.events(n - n // 2, "sms") + self.events(n // 2, "email")
        started, ingested0 = time.perf_counter(), await self.conn.fetchval(INGESTED)
        await self.produce(recs)
        await self.wait_drained(ingested0, len(recs), started, "warm-up")

    async def idle(self) -> None:
        before = machine.cpu_seconds(self.pids)
        await asyncio.sleep(self.args.idle_seconds)
        self.out["cpu_idle"] = machine.cpu_delta(before, machine.cpu_seconds(self.pids), self.args.idle_seconds, 0)

    async def gateway_received(self, number: str) -> float | None:
        resp = await self.http.get(f"{self.stack.sms_url}/messages", params={"to": number})
        resp.raise_for_status()
        return min((m["received_ts"] for m in resp.json()), default=None)

    async def emergency_phase(self, lifted: dict[str, str] | None) -> dict:
        """The backlog, the emergencies while it drains; then, with `lifted`, notify restarted with its rate
        limit lifted to drain the rest: the dispatcher alone, the consumer idle."""
        a = self.args
        label = "emergency under backlog"
        backlog = self.events(a.backlog, "sms")
        ingested0, seq0 = await self.conn.fetchval(INGESTED), await self.conn.fetchval(OUTBOX_SEQ)
        await set_gateway(self.http, self.stack.sms_url, a.hold_ms)  # the provider slows down: a backlog forms
        cpu0, busy0 = machine.cpu_seconds(self.pids), _machine_busy()
        started, t0 = time.perf_counter(), time.time()
        produce_s = await self.produce(backlog)
        behind = await self.emergencies(a.behind, 0)  # right behind the backlog on the topic
        ingest_s, got = await poll(self.conn, INGESTED, (), lambda v: v >= ingested0 + a.backlog + a.behind,
                                   started, a.drain_timeout, "backlog: events taken by the consumer")
        if ingest_s is None:
            raise RuntimeError(f"backlog: the consumer took {got - ingested0} of {a.backlog + a.behind} events")
        queued_at_start = await self.conn.fetchval(PENDING)
        await set_gateway(self.http, self.stack.sms_url, a.provider_latency_ms)
        released_at = time.time()
        say(f"  backlog: every row made after {ingest_s} s, {queued_at_start} messages queued; the gateway back to "
            f"{a.provider_latency_ms} ms; in {a.hold_ms / 1000 + 1:g} s (the held batch answered), {a.emergencies} "
            f"emergencies, one every {a.interval} s")
        await asyncio.sleep(a.hold_ms / 1000 + 1)
        during = await self.emergencies(a.emergencies, a.interval)
        all_e = behind + during
        ids = [uuid.UUID(e["event_id"]) for e in all_e]
        done_s, sent = await poll(self.conn, SENT_OF, (ids,), lambda v: v >= len(all_e), started, a.drain_timeout,
                                  "emergencies sent")
        restart_at = time.time()
        n_all = a.backlog + len(all_e)
        cpu1, busy1, wall1 = machine.cpu_seconds(self.pids), _machine_busy(), time.perf_counter() - started
        left_at_restart = await self.conn.fetchval(PENDING) if lifted else None
        polls: list[tuple] = []  # (epoch, CPU seconds per process, machine busy) at each poll of the lifted drain
        polls_ready: list[float] = []  # when the restarted notify answered /readyz (its consumer joined)
        tick = None
        if lifted:
            say(f"  {left_at_restart} left; restarting notify with {lifted}: the dispatcher drains them alone")
            # Not waiting for readiness: the dispatcher starts before the consumer has joined its group.
            self.stack.services.supervisor.children["notify"].env.update(lifted)
            await asyncio.to_thread(self.stack.services.supervisor.restart, "notify")
            self.pids = self._pids()
            ready = asyncio.create_task(asyncio.to_thread(
                self.stack.services.supervisor.wait_ready, "notify", f"{self.stack.url('notify')}/readyz",
                self.stack.ready_timeout))
            ready.add_done_callback(lambda _t: polls_ready.append(time.time()))
            tick = lambda: polls.append((time.time(), machine.cpu_seconds(self.pids), _machine_busy()))  # noqa: E731
        drained_s, left = await poll(self.conn, PENDING, (), lambda v: v == 0, started, a.drain_timeout,
                                     "backlog: messages not sent yet", 0.25 if lifted else 0.5, tick)
        if lifted:
            await ready
            ready_at = polls_ready[0]
        rows = await self.rows(backlog)
        b_created = sorted(r["created"] for r in rows)
        b_sent = sorted(r["sent"] for r in rows if r["sent"] is not None)
        # Per message sent by then (every row was made too); after a restart, per message the new process sent.
        sent_by_restart = bisect.bisect_right(b_sent, restart_at) + len(all_e)
        self.out["cpu"][label] = _with_others(machine.cpu_delta(cpu0, cpu1, wall1, sent_by_restart), busy1 - busy0)
        if lifted and (w := steady_window([t for t, _, _ in polls], [t for t in b_sent if t > restart_at])):
            (t_a, c_a, b_a), (t_b, c_b, b_b) = polls[w[0]], polls[w[1]]
            self.out["cpu"]["lifted drain (steady part)"] = _with_others(machine.cpu_delta(c_a, c_b, t_b - t_a, w[2]),
                                                                         b_b - b_a)
        e_rows = {str(r["source_id"]): r for r in await self.conn.fetch(ROWS, ids)}
        claims = {r["nid"]: r["n"] for r in await self.conn.fetch(
            CLAIMS_OF, seq0, [str(r["id"]) for r in e_rows.values()])}
        for e in all_e:
            row = e_rows.get(e["event_id"])
            e["created"] = float(row["created"]) if row else None
            e["sent"] = float(row["sent"]) if row and row["sent"] is not None else None
            e["claims"] = claims.get(str(row["id"])) if row else None
            e["gateway"] = await self.gateway_received(e["number"])
        first = during[0]["produced"] if during else t0
        last = max((e["gateway"] for e in during if e.get("gateway")), default=restart_at)
        before = [t for t in b_sent if released_at + a.hold_ms / 1000 < t <= restart_at]
        out = {
            "backlog": phase_summary([dict(r) for r in rows], t0, a.backlog) | {
                "produce_s": round(produce_s, 3), "polled_ingest_s": ingest_s, "polled_drained_s": drained_s,
                "queued_when_ingested": queued_at_start, "left_at_timeout": left if drained_s is None else 0,
                "hold_ms": a.hold_ms, "sent_while_held": bisect.bisect_right(b_sent, released_at),
                "drain_rate_during_emergencies_per_s": window_rate(b_sent, first, last),
                "steady_rate_before_restart_per_s": steady_rate(before),
                "queued_when_emergencies_started": still_queued(b_created, b_sent, during[0]["produced"])
                if during else None},
            "behind": emergency_summary(behind, b_created, b_sent) | {"items": behind},
            "during": emergency_summary(during, b_created, b_sent) | {"items": during},
            "interval_s": a.interval, "emergencies_sent_s": done_s, "emergencies_sent": sent,
            "latency_ms": a.provider_latency_ms,
            "outbox": outbox_summary([dict(r) for r in await self.conn.fetch(OUTBOX_SINCE, seq0)], n_all),
        }
        if lifted:
            after = [t for t in b_sent if t > restart_at]
            out["lifted_drain"] = {
                "env": lifted, "left_at_restart": left_at_restart, "sent_after_restart": len(after),
                "ready_after_restart_s": round(ready_at - restart_at, 1),
                "first_sent_after_restart_s": _r3(after[0] - restart_at) if after else None,
                "drained_after_restart_s": _r3(after[-1] - restart_at) if after else None,
                "dispatch_rate_per_s": rate(len(after), after[-1] - after[0]) if len(after) > 1 else None,
                "steady_rate_per_s": steady_rate(after)}
        d = out["during"]["produce_to_gateway"]
        say(f"  emergencies: produce -> gateway p50 {d['p50_ms']} ms, p95 {d['p95_ms']} ms, max {d['max_ms']} ms; "
            f"queued normal messages {out['during']['queued']}; backlog drained after {drained_s} s")
        return out

    async def emergencies(self, n: int, interval: float) -> list[dict]:
        """n emergencies (one SMS each), one every `interval` s (0: back to back), each acknowledged before the next."""
        out, start = [], time.perf_counter()
        for i in range(n):
            if (delay := start + i * interval - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            (k, v, h, event_id), = self.events(1, "sms", Urgency.emergency)
            number = [c.address for c in ReferralCreated.model_validate_json(v).contacts][0]
            produced = time.time()
            await (await self.producer.send(TOPIC, value=v, key=k, headers=h))
            out.append({"event_id": event_id, "number": number, "produced": produced,
                        "acked_ms": round(1000 * (time.time() - produced), 1)})
        return out

    async def profile(self, path: Path, n: int) -> dict:
        """A batch through the pipeline under py-spy: where notify's CPU per message goes. Its rate is not a figure."""
        recs = self.events(n, "sms")
        cpu0, t0 = machine.cpu_seconds(self.pids), time.perf_counter()
        ingested0 = await self.conn.fetchval(INGESTED)
        with Recorder(self.pids["notify"], path):
            await self.produce(recs)
            await self.wait_drained(ingested0, n, t0, "profile")
        wall = time.perf_counter() - t0
        cpu = machine.cpu_delta(cpu0, machine.cpu_seconds(self.pids), wall, n)
        notify_s = cpu["per_process"].get("notify", {}).get("cpu_s", 0)
        return {"file": str(path.relative_to(report.RESULTS_DIR.parent.parent)), "messages": n,
                "rate_per_s": rate(n, wall), "notify_cpu_pct_of_one_core": round(100 * notify_s / wall, 1),
                "notify_cpu_ms_per_message": cpu["per_process"].get("notify", {}).get("ms_per_item"),
                **summarise(path), "focus": focus(path, FOCUS)}

    async def restart_notify(self, env: dict[str, str]) -> None:
        child = self.stack.services.supervisor.children["notify"]
        child.env.update(env)
        await asyncio.to_thread(self.stack.services.restart, "notify", self.stack.ready_timeout)
        self.pids = self._pids()


async def set_gateway(http: httpx.AsyncClient, sms_url: str, delay_ms: int) -> dict:
    resp = await http.post(f"{sms_url}/control", json={"delay_ms": delay_ms})
    resp.raise_for_status()
    return resp.json()["global"]


async def measure(stack: Stack, args: argparse.Namespace, profile_out: Path) -> dict:
    dsn = asyncpg_dsn(stack.database_url)
    out: dict = {"machine": machine.facts(await fetchval(dsn, "SHOW server_version"))}
    env = dict(item.split("=", 1) for item in args.notify_env)
    from services.notify.settings import NotifySettings  # the defaults only: the process reads its own env

    fields = NotifySettings.model_fields
    settings = {k: notify_setting(k, fields[k].default, env) for k in (
        "notify_batch_size", "notify_poll_s", "notify_provider_rate_per_s", "notify_provider_burst",
        "notify_recipient_rate_per_s", "notify_claim_lease_s")}
    out["notify_settings"] = settings | {"overrides": env}
    conn = await asyncpg.connect(dsn)
    producer = new_producer(stack.bootstrap)
    await producer.start()
    http = httpx.AsyncClient(timeout=30, trust_env=False)
    try:
        r = Run(stack, args, conn, producer, http)
        r.out = out | {"cpu": {}}
        out = r.out
        out["gateway"] = await set_gateway(http, stack.sms_url, args.provider_latency_ms)
        say(f"gateway: every send answered after {args.provider_latency_ms} ms; warm-up: {args.warmup} events")
        await r.warm_up()
        say(f"idle: {args.idle_seconds} s with no load")
        await r.idle()

        say(f"throughput: {args.messages} ReferralCreated with one SMS each -> {TOPIC} -> notify -> gateway")
        recs = r.events(args.messages, "sms")
        out["sms"] = await r.phase("sms", recs, "sms")
        if args.emails:
            say(f"throughput: {args.emails} ReferralCreated with one email each -> notify -> SMTP sink")
            out["email"] = await r.phase("email", r.events(args.emails, "email"), "email")
        lifted = {"NOTIFY_PROVIDER_RATE_PER_S": str(args.lifted_rate),
                  "NOTIFY_PROVIDER_BURST": str(int(args.lifted_rate))} if args.lifted_rate else None
        if args.backlog:
            say(f"emergency under backlog: {args.backlog} normal SMS, {args.behind} emergencies right behind them, "
                f"then {args.emergencies} while they drain")
            out["emergency"] = await r.emergency_phase(lifted)
        elif lifted:
            say(f"restarting notify with {lifted} (the token bucket out of the way)")
            await r.restart_notify(lifted)
        if lifted and args.lifted_messages:
            await r.warm_up()
            say(f"throughput, rate limit lifted: {args.lifted_messages} SMS")
            out[LIFTED] = await r.phase(LIFTED, r.events(args.lifted_messages, "sms"), "sms")
            out[LIFTED]["env"] = lifted
        if lifted and args.profile_messages:
            pid = r.pids["notify"]
            say(f"profile: py-spy on notify (pid {pid}), {args.profile_messages} SMS, limit lifted")
            out["profile"] = await r.profile(profile_out, args.profile_messages)
        if args.skip_ceilings:
            return out
        # Ceilings alone: notify stopped, the gateway, the sink, PostgreSQL and the broker still up.
        stack.services.supervisor.stop("notify")
        out["ceilings"] = c = {"pgbench": []}
        batch = settings["notify_batch_size"]
        token = stack.services.supervisor.children["sms"].env["SMS_GATEWAY_API_TOKEN"]
        body = ReferralCreated.model_validate_json(recs[0][1])
        say(f"ceiling: the gateway alone, {args.gateway_requests} sends, {batch} in flight, "
            f"{args.provider_latency_ms} ms each")
        c["gateway"] = await gateway_ceiling(stack.sms_url, token, args.gateway_requests, batch, body.case_number)
        say(f"ceiling: the SMTP sink alone, {args.smtp_requests} emails, {batch} in flight")
        c["smtp"] = await smtp_ceiling(stack.ports.smtp, args.smtp_requests, batch)
        say(f"ceiling: the throughput phase's {len(recs)} records, raw produce and consume on a scratch topic")
        c["kafka"] = await kafka_ceiling(stack.bootstrap, [(k, v, h) for k, v, h, _ in recs],
                                         CATALOG.topic(TOPIC).partitions)
        await ceilings.create_scratch(dsn)
        try:
            for clients in args.pgbench_clients:
                say(f"ceiling: pgbench 1-row INSERT, -c {clients}, {args.pgbench_seconds} s")
                c["pgbench"].append(ceilings.pgbench(dsn, clients, args.pgbench_seconds))
        finally:
            await ceilings.drop_scratch(dsn)
    finally:
        await http.aclose()
        await producer.stop()
        await conn.close()
    return out


async def gateway_ceiling(sms_url: str, token: str, requests: int, concurrency: int, reference: str) -> dict:
    """The gateway's generic API with `concurrency` sends always in flight, from an httpx client like the
    adapter's (default pool: 20 kept-alive connections). No callback URL, so no receipts."""
    client = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                               timeout=10.0, trust_env=False)
    body = (f"Đường dây nóng 111 chuyển vụ việc {reference} (bình thường). Xác nhận: http://127.0.0.1:8002/ack/"
            + "x" * 76)
    latencies: list[float] = []
    errors: Counter = Counter()

    async def worker(it) -> None:
        for i in it:
            s = time.perf_counter()
            try:
                resp = await client.post(f"{sms_url}/messages", json={"to": sms_number(SMS_NUMBERS - 1 - i % 1000),
                                                                       "body": body, "sender": "111"})
                if resp.status_code == 202:
                    latencies.append(time.perf_counter() - s)
                else:
                    errors[f"HTTP {resp.status_code}"] += 1
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1

    try:
        warm = iter(range(concurrency))
        await asyncio.gather(*(worker(warm) for _ in range(concurrency)))
        latencies.clear()
        it = iter(range(requests))
        started = time.perf_counter()
        await asyncio.gather(*(worker(it) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
    return {"requests": requests, "concurrency": concurrency, "ok": len(latencies), "errors": dict(errors),
            "rate_per_s": rate(len(latencies), elapsed), "latency": summary_ms(latencies)}


async def smtp_ceiling(port: int, requests: int, concurrency: int) -> dict:
    """The SMTP sink with `concurrency` emails in flight, each one connection as notify's SmtpProvider sends it
    (aiosmtplib.send: connect, EHLO, MAIL, RCPT, DATA, QUIT)."""
    from services.notify.delivery.providers import OutgoingMessage
    from services.notify.delivery.smtp import email_message

    latencies: list[float] = []
    errors: Counter = Counter()
    body = "Kính gửi Quý đơn vị,\n\n" + "Đường dây nóng 111 chuyển vụ việc đến Quý đơn vị.\n" * 20

    async def worker(it) -> None:
        for i in it:
            msg = email_message("111 Hotline <alerts@hotline111.example>", OutgoingMessage(
                notification_id=str(uuid.uuid4()), recipient=email_address(900_000 + i), body=body,
                subject="[111] Vụ việc 111-2026-000001: đề nghị xác nhận", headers={}, webhook_endpoint_id=None))
            s = time.perf_counter()
            try:
                await aiosmtplib.send(msg, hostname="127.0.0.1", port=port, timeout=10)
                latencies.append(time.perf_counter() - s)
            except (aiosmtplib.SMTPException, OSError) as exc:
                errors[type(exc).__name__] += 1

    it = iter(range(requests))
    started = time.perf_counter()
    await asyncio.gather(*(worker(it) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"requests": requests, "concurrency": concurrency, "ok": len(latencies), "errors": dict(errors),
            "rate_per_s": rate(len(latencies), elapsed), "latency": summary_ms(latencies)}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    check_local()
    if args.profile_messages and py_spy_path() is None:
        sys.exit("bench notify: py-spy not found; `.venv/bin/pip install -e '.[bench]'` or pass --no-profile")
    started = datetime.now(UTC)
    stamp = "notify-" + started.strftime("%Y%m%dT%H%M%SZ")
    report.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profile_out = report.RESULTS_DIR / f"{stamp}-pyspy.txt"
    try:
        with fresh_stack() as (stack, _logs):
            stack.extra_env.update(dict(item.split("=", 1) for item in args.notify_env))
            say("starting durable PostgreSQL, Tansu, migrations, then notify alone (with the SMTP sink and SMS gateway)")
            start_notify_only(stack)
            results = run(measure(stack, args, profile_out))
    except KeyboardInterrupt:
        say("interrupted; stopping")
        return 130
    results |= {"started_at": started.isoformat(), "command": " ".join(["python -m bench notify", *argv]),
                "args": vars(args)}
    return report.publish(results, notify_report.render(results), stamp, profile_out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
