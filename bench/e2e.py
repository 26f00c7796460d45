"""The platform measured from outside: POST /cases at intake, and the first message each report makes
an agency receive, as the SMTP sink or the SMS gateway stamps it when it accepts it.

`stage` is one open-loop run at a fixed rate; `throughput` a closed-loop run. Both match every agency
message to its report by the case number in the email's subject or the SMS's text, and time it with the
sink's or the gateway's own `received_ts` (time.time() when it accepted the message), never with a
timestamp of the platform's. Every clock is this machine's.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from itertools import cycle

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bench import hops, load, machine
from bench.common import pg_counters
from bench.resources import MemorySampler
from bench.stats import rate, summary_ms
from bench.verdict import achieved_rate
from schemas.geography import provinces

CASE_NUMBER = re.compile(r"111-\d{4}-\d+")
LOAD_CLIENT = "bench (load client)"


def report_body():
    """Reports spread over every province, so referral matches a different unit each time."""
    codes = cycle(sorted(provinces()))
    return lambda i: {"province_code": next(codes), "channel": "phone"}


def operator_headers(stack):
    """Intake wants a bearer JWT with the operator role: one token for the whole run."""
    headers = stack.auth_headers("operator", sub="bench")
    return lambda i: headers


def sinks(stack) -> dict[str, str]:
    """Where agency messages land, by channel: the SMTP sink's and the SMS gateway's GET /messages."""
    return {"email": stack.smtp_messages_url, "sms": stack.sms_messages_url}


def stack_pids(stack) -> dict[str, int]:
    """bench/machine.py's processes, and the SMS gateway (an agency's side, like the SMTP sink)."""
    pids = machine.stack_pids(stack)
    if stack.services and "sms" in stack.services.supervisor.children:
        pids["sms"] = stack.services.pid("sms")
    return pids


def message_facts(channel: str, m: dict) -> tuple[str | None, list[str], float]:
    """(case number, recipients, accepted at) of one message as the SMTP sink or the SMS gateway lists it."""
    text = m.get("subject", "") if channel == "email" else m.get("body", "")
    found = CASE_NUMBER.search(text or "")
    recipients = list(m.get("rcpt_tos") or []) if channel == "email" else [m.get("to", "")]
    return (found.group() if found else None), recipients, m["received_ts"]


class MessageWatcher:
    """Polls the SMTP sink and the SMS gateway in the background and remembers, for each case number, when
    the first message about it was accepted and on which channel.

    `?since=` keeps each poll small; a small overlap plus de-duplication by message id covers two messages
    stamped within the same instant around a poll. The poll interval does not bound the precision: the
    time kept is the sink's stamp, not the poll's. A second message about one case to the same recipient
    on the same channel counts as a duplicate (the platform sends each alert once).
    """

    def __init__(self, http: httpx.AsyncClient, urls: dict[str, str], interval: float = 0.2):
        self._http = http
        self._urls = urls
        self._interval = interval
        self._since = dict.fromkeys(urls, time.time() - 1.0)
        self._seen: set[str] = set()
        self._targets: set[tuple[str, str, str]] = set()
        self.first: dict[str, tuple[float, str]] = {}  # case number -> (accepted at, channel) of its first message
        self.messages: Counter = Counter()  # (case number, channel) -> messages
        self.duplicates = 0
        self._task: asyncio.Task | None = None

    @property
    def arrived(self) -> dict[str, float]:
        return {c: ts for c, (ts, _ch) in self.first.items()}

    async def __aenter__(self) -> MessageWatcher:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    def record(self, channel: str, m: dict) -> None:
        if (key := f"{channel}:{m['id']}") in self._seen:
            return
        self._seen.add(key)
        self._since[channel] = max(self._since[channel], m["received_ts"])
        case, recipients, ts = message_facts(channel, m)
        if case is None:
            return
        self.messages[case, channel] += 1
        for to in recipients:
            if (case, channel, to) in self._targets:
                self.duplicates += 1
            self._targets.add((case, channel, to))
        if case not in self.first or ts < self.first[case][0]:
            self.first[case] = (ts, channel)

    async def poll(self) -> None:
        for channel, url in self._urls.items():
            resp = await self._http.get(url, params={"since": self._since[channel] - 0.5})
            resp.raise_for_status()
            for m in resp.json():
                self.record(channel, m)

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except httpx.HTTPError:  # a missed poll only delays the next one; the drain timeout bounds it
                pass
            await asyncio.sleep(self._interval)

    async def wait_for(self, case_numbers: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not case_numbers <= self.first.keys():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        await self.poll()  # catch the last batch without waiting for the next tick
        return True


async def clear_sinks(http: httpx.AsyncClient, stack) -> None:
    for url in sinks(stack).values():
        (await http.delete(url)).raise_for_status()


async def warm_up(stack, n: int = 20, timeout: float = 60.0) -> None:
    """A few reports first, so connection pools, imports and the consumer groups are warm."""
    async with load.Clients() as clients, load.client(2) as http:
        run = await load.closed_loop(clients, f"{stack.url('intake')}/cases", report_body(), n, 4,
                                     operator_headers(stack))
        if len(run.ok) != n:
            raise RuntimeError(f"warm-up: intake answered {run.errors()}")
        async with MessageWatcher(http, sinks(stack)) as watch:
            if not await watch.wait_for({s.body["case_number"] for s in run.ok}, timeout):
                raise RuntimeError("warm-up: no agency message arrived; is notify running? see the logs")
        await asyncio.sleep(1.0)  # the other messages of the same reports
        await clear_sinks(http, stack)


# -- the pipeline's own state, to know when it is idle again -------------------------------------
OUTBOXES = ("intake", "referral", "notify")
PENDING = ("SELECT " + " + ".join(f"(SELECT count(*) FROM {s}.outbox WHERE published_at IS NULL)" for s in OUTBOXES)
           + " + (SELECT count(*) FROM notify.notifications WHERE status IN ('created', 'sending'))")
PUBLISHED = " UNION ALL ".join(f"SELECT '{s}' AS service, topic, type, count(*) AS n FROM {s}.outbox "
                              "WHERE published_at IS NOT NULL GROUP BY topic, type" for s in OUTBOXES)


async def _scalar(dsn: str, sql: str) -> int | None:
    """A count from the services' tables; None if their shape changed (a diagnostic must not fail the run)."""
    try:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()
    except (asyncpg.PostgresError, OSError):
        return None


async def published_events(dsn: str) -> dict[str, int] | None:
    """Events the three outboxes have published to Kafka so far, by "service topic type"; None if the
    tables changed shape."""
    try:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(PUBLISHED)
        finally:
            await conn.close()
    except (asyncpg.PostgresError, OSError):
        return None
    return {f"{r['service']} {r['topic']} {r['type']}": r["n"] for r in rows}


def events_per_report(before: dict[str, int], after: dict[str, int], reports: int) -> dict[str, float]:
    """Events published per report between two `published_events`, by kind, largest first."""
    per = {k: round((n - before.get(k, 0)) / reports, 2) for k, n in after.items() if reports}
    return dict(sorted(((k, v) for k, v in per.items() if v), key=lambda kv: -kv[1]))


async def kafka_lag(bootstrap: str) -> int | None:
    """Records on the broker that some consumer group has not committed yet, summed over every group and
    partition; None if the broker would not say. A backlog can sit in Kafka while the consumers wait for a
    core, with nothing pending in PostgreSQL and little CPU burnt: this is what sees it. (The consumers
    commit after each batch, a projection within a second.) Offsets are asked for with a consumer of each
    group that never joins it: Tansu answers that OffsetFetch, not the admin client's newer one."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        await admin.start()
        await reader.start()
        groups = [g for g, _kind in await admin.list_consumer_groups()]
        tps = [TopicPartition(t, p) for t in await reader.topics() if not t.startswith("__")
               for p in sorted(reader.partitions_for_topic(t) or ())]
        ends = await reader.end_offsets(tps) if tps else {}
        lag = 0
        for group in groups:
            member = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
            await member.start()
            try:
                done = await asyncio.gather(*(member.committed(tp) for tp in tps))
            finally:
                await member.stop()
            lag += sum(max(0, ends[tp] - at) for tp, at in zip(tps, done) if at is not None)
        return lag
    except (KafkaError, OSError, asyncio.TimeoutError):
        return None
    finally:
        await reader.stop()
        await admin.close()


async def settle(dsn: str, bootstrap: str, pids: dict[str, int], idle_busy_pct: float, timeout: float) -> dict:
    """Wait until the platform has finished the work of the last phase, so it does not become the next
    phase's load: no unpublished outbox row, no notification waiting to be sent, no consumer group behind
    on Kafka, and the stack's CPU (every process but the load client) back near its idle level, two
    checks in a row. The SMS receipts show up only in the CPU."""
    started, quiet, busy, pending, lag = time.perf_counter(), 0, None, None, None
    watched = {n: p for n, p in pids.items() if n != LOAD_CLIENT}
    threshold = idle_busy_pct + max(5.0, 0.5 * idle_busy_pct)
    while time.perf_counter() - started < timeout:
        before, t0 = machine.cpu_seconds(watched), time.perf_counter()
        await asyncio.sleep(1.0)
        busy = machine.cpu_delta(before, machine.cpu_seconds(watched), time.perf_counter() - t0, 0)["machine_busy_pct"]
        pending = await _scalar(dsn, PENDING)
        lag = await kafka_lag(bootstrap) if not pending else None  # only worth asking when the rest is done
        quiet = quiet + 1 if not pending and not lag and busy is not None and busy <= threshold else 0
        if quiet >= 2:
            break
    return {"settled": quiet >= 2, "seconds": round(time.perf_counter() - started, 1), "pending": pending,
            "kafka_lag": lag, "busy_pct": busy, "threshold_pct": round(threshold, 1)}


# -- the measured runs ---------------------------------------------------------------------------
async def _send_and_collect(stack, drain_timeout: float, send_load):
    """Run `send_load(clients, url)` against POST /cases while watching both sinks for each report's
    messages. Returns (run, sent reports by case number, the watcher, whether every report reached an
    agency, seconds from the last answer until the last first message or the timeout)."""
    url = f"{stack.url('intake')}/cases"
    async with load.Clients() as clients, load.client(2) as sink_http:
        async with MessageWatcher(sink_http, sinks(stack)) as watch:
            run = await send_load(clients, url)
            sent = {s.body["case_number"]: s for s in run.ok}
            t0 = time.perf_counter()
            drained = await watch.wait_for(set(sent), drain_timeout)
            drain_s = time.perf_counter() - t0
    return run, sent, watch, drained, drain_s


def _first_channels(watch: MessageWatcher, sent: dict) -> dict[str, int]:
    return dict(Counter(watch.first[c][1] for c in sent if c in watch.first))


def _messages(watch: MessageWatcher, sent: dict) -> dict[str, int]:
    out: Counter = Counter()
    for (case, channel), n in watch.messages.items():
        if case in sent:
            out[channel] += n
    return dict(out)


async def throughput(stack, n: int, concurrency: int, drain_timeout: float) -> dict:
    """Closed loop: how fast intake accepts reports, and how fast their first agency messages come out."""
    run, sent, watch, drained, _ = await _send_and_collect(
        stack, drain_timeout,
        lambda clients, url: load.closed_loop(clients, url, report_body(), n, concurrency, operator_headers(stack)))
    arrived = {c: ts for c, ts in watch.arrived.items() if c in sent}
    last = max(arrived.values(), default=run.started_wall)
    return {
        "reports": n,
        "concurrency": concurrency,
        "accepted": len(run.ok),
        "errors": run.errors(),
        "intake_rate_per_s": rate(len(run.ok), run.elapsed_s),
        "intake_seconds": round(run.elapsed_s, 2),
        "http_latency": summary_ms([s.latency_s for s in run.ok]),
        "reached": len(arrived),
        "first_by_channel": _first_channels(watch, sent),
        "messages": _messages(watch, sent),
        "duplicate_messages": watch.duplicates,
        "drained": drained,
        "e2e_rate_per_s": rate(len(arrived), last - run.started_wall),
        "e2e_seconds": round(last - run.started_wall, 2),
        # Report -> first message under saturation: mostly queueing behind the earlier reports.
        "saturated_latency": summary_ms([arrived[c] - s.scheduled_wall for c, s in sent.items() if c in arrived]),
    }


async def stage(stack, rate_per_s: float, duration: float, drain_timeout: float, dsn: str,
                max_in_flight: int | None = None) -> dict:
    """One open-loop stage: `rate_per_s` reports per second for `duration` seconds, each launched at its
    scheduled instant whatever the earlier ones are doing. Latencies count from that instant.

    Returns intake's latency, report -> first agency message latency, the rates achieved (intake's
    answers; first agency messages), what is missing, the CPU and memory of each process, PostgreSQL
    transactions per report and the per-hop breakdown from the services' own timestamps."""
    pids = stack_pids(stack)
    pg0 = await pg_counters(dsn)
    cpu0, t0 = machine.cpu_seconds(pids), time.perf_counter()
    with MemorySampler(pids) as mem:
        marks: dict = {}

        async def send(clients, url):
            run = await load.open_loop(clients, url, report_body(), rate_per_s, duration, operator_headers(stack),
                                       max_in_flight=max_in_flight, answer_timeout=drain_timeout)
            marks["cpu"], marks["t"] = machine.cpu_seconds(pids), time.perf_counter()
            return run

        run, sent, watch, drained, drain_s = await _send_and_collect(stack, drain_timeout, send)
    cpu1, t1 = machine.cpu_seconds(pids), time.perf_counter()
    pg1 = await pg_counters(dsn)
    accepted = len(run.ok)
    first = {c: watch.first[c][0] for c in sent if c in watch.first}
    per = max(1, accepted)
    result = {
        "rate_per_s": rate_per_s,
        "duration_s": duration,
        "scheduled": len(run.samples),
        "accepted": accepted,
        "errors": run.errors(),
        "client_max_launch_lag_ms": round(run.max_launch_lag_s * 1000, 2),
        "max_in_flight": max_in_flight,
        "intake_achieved_per_s": achieved_rate(s.scheduled_wall + s.latency_s for s in run.ok),
        "delivered_achieved_per_s": achieved_rate(first.values()),
        "http_latency": summary_ms([s.latency_s for s in run.ok]),
        "first_message_latency": summary_ms([first[c] - s.scheduled_wall for c, s in sent.items() if c in first]),
        "first_by_channel": _first_channels(watch, sent),
        "messages": _messages(watch, sent),
        "missing": accepted - len(first),
        "duplicate_messages": watch.duplicates,
        "drained": drained,
        "drain_timeout_s": drain_timeout,
        "drain_s": round(drain_s, 2),
        "pg_transactions_per_report": round((pg1[0] - pg0[0]) / per, 1),
        "pg_wal_fsyncs_per_report": round((pg1[1] - pg0[1]) / per, 1) if pg1[1] is not None else None,
        # CPU while the load ran (first send to last answer), and per report over the load and the drain.
        "cpu_load": machine.cpu_delta(cpu0, marks["cpu"], marks["t"] - t0, accepted),
        "cpu": machine.cpu_delta(cpu0, cpu1, t1 - t0, accepted),
        "memory": mem.result(),
        "hops": await hops.breakdown(dsn, {c: s.scheduled_wall for c, s in sent.items()}, watch.arrived),
    }
    return result
