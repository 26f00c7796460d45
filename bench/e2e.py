"""The thin slice measured from outside: POST /cases at intake, emails arriving at the SMTP sink."""
from __future__ import annotations

import asyncio
import re
import time
from itertools import cycle

import httpx

from bench import hops, load
from bench.stats import rate, summary_ms
from schemas.geography import provinces

CASE_NUMBER = re.compile(r"111-\d{4}-\d+")


def report_body():
    """Reports spread over every province, so referral matches a different unit each time."""
    codes = cycle(sorted(provinces()))
    return lambda i: {"province_code": next(codes), "channel": "phone"}


def operator_headers(stack):
    """Intake wants a bearer JWT with the operator role: one token for the whole run."""
    headers = stack.auth_headers("operator", sub="bench")
    return lambda i: headers


class SinkWatcher:
    """Polls the SMTP sink in the background and remembers when each case's first email arrived.

    `?since=` keeps each poll small; the small overlap plus de-duplication by message id covers
    two messages stamped within the same instant around a poll.
    """

    def __init__(self, http: httpx.AsyncClient, messages_url: str, interval: float = 0.2):
        self._http = http
        self._url = messages_url
        self._interval = interval
        self._since = time.time() - 1.0
        self._seen: set[str] = set()
        self.arrived: dict[str, float] = {}  # case number -> received_ts of its first email
        self.duplicates = 0
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> SinkWatcher:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    async def poll(self) -> None:
        resp = await self._http.get(self._url, params={"since": self._since - 0.5})
        resp.raise_for_status()
        for m in resp.json():
            if m["id"] in self._seen:
                continue
            self._seen.add(m["id"])
            self._since = max(self._since, m["received_ts"])
            match = CASE_NUMBER.search(m["subject"])
            if match is None:
                continue
            if match.group() in self.arrived:
                self.duplicates += 1
            else:
                self.arrived[match.group()] = m["received_ts"]

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except httpx.HTTPError:  # a missed poll only delays the next one; the drain timeout bounds it
                pass
            await asyncio.sleep(self._interval)

    async def wait_for(self, case_numbers: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not case_numbers <= self.arrived.keys():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        await self.poll()  # catch the last batch without waiting for the next tick
        return True


async def clear_sink(http: httpx.AsyncClient, messages_url: str) -> None:
    (await http.delete(messages_url)).raise_for_status()


async def warm_up(stack, n: int = 20, timeout: float = 60.0) -> None:
    """A few reports first, so connection pools, imports and the consumer groups are warm."""
    async with load.Clients() as clients, load.client(2) as http:
        run = await load.closed_loop(clients, f"{stack.url('intake')}/cases", report_body(), n, 4,
                                     operator_headers(stack))
        if len(run.ok) != n:
            raise RuntimeError(f"warm-up: intake answered {run.errors()}")
        async with SinkWatcher(http, stack.smtp_messages_url) as sink:
            if not await sink.wait_for({s.body["case_number"] for s in run.ok}, timeout):
                raise RuntimeError("warm-up: emails did not arrive; is notify running? see the logs")
        await clear_sink(http, stack.smtp_messages_url)


async def _send_and_collect(stack, drain_timeout: float, send_load):
    """Run `send_load(clients, url)` against POST /cases while watching the sink for each report's email.
    Returns (run, sent reports by case number, the sink watcher, whether every email arrived)."""
    url = f"{stack.url('intake')}/cases"
    async with load.Clients() as clients, load.client(2) as sink_http:
        async with SinkWatcher(sink_http, stack.smtp_messages_url) as sink:
            run = await send_load(clients, url)
            sent = {s.body["case_number"]: s for s in run.ok}
            drained = await sink.wait_for(set(sent), drain_timeout)
        await clear_sink(sink_http, stack.smtp_messages_url)
    return run, sent, sink, drained


async def throughput(stack, n: int, concurrency: int, drain_timeout: float) -> dict:
    """Closed loop: how fast intake accepts reports, and how fast their emails come out."""
    run, sent, sink, drained = await _send_and_collect(
        stack, drain_timeout,
        lambda clients, url: load.closed_loop(clients, url, report_body(), n, concurrency, operator_headers(stack)))
    arrived = {c: ts for c, ts in sink.arrived.items() if c in sent}
    last = max(arrived.values(), default=run.started_wall)
    return {
        "reports": n,
        "concurrency": concurrency,
        "accepted": len(run.ok),
        "errors": run.errors(),
        "intake_rate_per_s": rate(len(run.ok), run.elapsed_s),
        "intake_seconds": round(run.elapsed_s, 2),
        "http_latency": summary_ms([s.latency_s for s in run.ok]),
        "emails": len(arrived),
        "duplicate_emails": sink.duplicates,
        "drained": drained,
        "e2e_rate_per_s": rate(len(arrived), last - run.started_wall),
        "e2e_seconds": round(last - run.started_wall, 2),
        # Report->email under saturation: mostly queueing behind the earlier reports.
        "saturated_latency": summary_ms([arrived[c] - s.scheduled_wall for c, s in sent.items() if c in arrived]),
    }


async def latency(stack, rate_per_s: float, duration: float, drain_timeout: float, dsn: str) -> dict:
    """Open loop at a fixed rate: report->email latency from each report's scheduled send time."""
    run, sent, sink, drained = await _send_and_collect(
        stack, drain_timeout,
        lambda clients, url: load.open_loop(clients, url, report_body(), rate_per_s, duration,
                                            operator_headers(stack)))
    e2e = [sink.arrived[c] - s.scheduled_wall for c, s in sent.items() if c in sink.arrived]
    return {
        "rate_per_s": rate_per_s,
        "duration_s": duration,
        "scheduled": len(run.samples),
        "accepted": len(run.ok),
        "errors": run.errors(),
        "client_max_launch_lag_ms": round(run.max_launch_lag_s * 1000, 2),
        "http_latency": summary_ms([s.latency_s for s in run.ok]),
        "e2e_latency": summary_ms(e2e),
        "missing_emails": len(sent) - len(e2e),
        "duplicate_emails": sink.duplicates,
        "drained": drained,
        "drain_timeout_s": drain_timeout,
        "hops": await hops.breakdown(dsn, {c: s.scheduled_wall for c, s in sent.items()}, sink.arrived),
    }
