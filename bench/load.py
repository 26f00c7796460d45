"""The one HTTP load client, used both for intake and for the minimal-endpoint ceiling, so the two
figures differ only in the server under test."""
from __future__ import annotations

import asyncio
import functools
import itertools
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

Body = Callable[[int], dict]
Headers = Callable[[int], dict] | None  # per-request headers (bearer token, Idempotency-Key)


@dataclass
class Sample:
    index: int
    status: int  # 0: the request failed without an HTTP answer
    latency_s: float  # closed loop: from send; open loop: from the *scheduled* send time
    scheduled_wall: float  # time.time() at which the request was (meant to be) sent
    body: dict | None = None  # parsed JSON of a 2xx answer
    error: str | None = None


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    started_wall: float = 0.0
    elapsed_s: float = 0.0  # first send to last answer
    max_launch_lag_s: float = 0.0  # open loop: how late the client itself launched a request

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if 200 <= s.status < 300]

    def errors(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.samples:
            if not 200 <= s.status < 300:
                key = s.error or f"HTTP {s.status}"
                out[key] = out.get(key, 0) + 1
        return out


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def client(max_connections: int = 1) -> httpx.AsyncClient:
    # Keep-alive connections: no connection set-up inside the measurement. trust_env=False: no proxy.
    # One shared TLS context (unused over http://): building one per client costs ~19 ms of CPU, which
    # stalled the open-loop client whenever a backlog made it open new connections.
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0), trust_env=False, verify=_tls())


class Clients:
    """Single-connection clients handed out one per request in flight.

    One shared AsyncClient with a 32-connection pool managed only ~360 req/s against a no-op
    endpoint here (httpcore's pool bookkeeping, encode/httpx#3215); one client per connection
    did ~1,200. A new client is made whenever none is free, so the pool never delays a request.
    """

    def __init__(self) -> None:
        self._free: list[httpx.AsyncClient] = []
        self._all: list[httpx.AsyncClient] = []

    def take(self) -> httpx.AsyncClient:
        if self._free:
            return self._free.pop()
        self._all.append(c := client(1))
        return c

    def give(self, c: httpx.AsyncClient) -> None:
        self._free.append(c)

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.gather(*(c.aclose() for c in self._all), return_exceptions=True)


async def _post(clients: Clients, url: str, i: int, body: dict, t0: float, wall: float,
                headers: dict | None = None) -> Sample:
    http = clients.take()
    try:
        resp = await http.post(url, json=body, headers=headers)
        latency = time.perf_counter() - t0
        data = resp.json() if 200 <= resp.status_code < 300 else None
        return Sample(i, resp.status_code, latency, wall, data)
    except httpx.HTTPError as exc:
        return Sample(i, 0, time.perf_counter() - t0, wall, error=type(exc).__name__)
    finally:
        clients.give(http)


async def closed_loop(clients: Clients, url: str, make_body: Body, n: int, concurrency: int,
                      make_headers: Headers = None) -> Run:
    """n POSTs, `concurrency` in flight at all times: measures how fast the server takes work."""
    run = Run(started_wall=time.time())
    counter = itertools.count()
    started = time.perf_counter()

    async def worker() -> None:
        while (i := next(counter)) < n:
            t0 = time.perf_counter()
            headers = make_headers(i) if make_headers else None
            run.samples.append(await _post(clients, url, i, make_body(i), t0, time.time(), headers))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.elapsed_s = time.perf_counter() - started
    return run


def schedule(rate: float, duration: float) -> list[float]:
    """Seconds after the start at which each request of an open-loop run is due: `rate` per second,
    evenly spaced, for `duration` seconds. The grid is fixed before the first send and never moves,
    whatever the server or the client does (no coordinated omission)."""
    if rate <= 0 or duration <= 0:
        return []
    n = int(rate * duration + 1e-9)  # 0.1 * 30 is 2.9999999999999996
    return [i / rate for i in range(n)]


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


async def drive(offsets: list[float], launch: Callable[[int, float], None], *, start: float,
                clock: Clock = time.perf_counter, sleep: Sleep = asyncio.sleep) -> float:
    """Call `launch(i, due)` for each request at `start + offsets[i]` on `clock`, and return the largest
    launch lag (how late the client itself was). A request that falls due while the loop was stalled is
    launched at once, still with its own due time: the ones behind it are not pushed back, and its
    latency counts from when it was due. `launch` must not wait (it starts a task)."""
    lag = 0.0
    for i, offset in enumerate(offsets):
        due = start + offset
        if (delay := due - clock()) > 0:
            await sleep(delay)
        lag = max(lag, clock() - due)
        launch(i, due)
    return lag


UNANSWERED = "unanswered"  # the error of an open-loop request still waiting when the run gave up on it


async def open_loop(clients: Clients, url: str, make_body: Body, rate: float, duration: float,
                    make_headers: Headers = None, max_in_flight: int | None = None,
                    answer_timeout: float | None = None) -> Run:
    """POSTs on a fixed schedule, each launched as its own task whatever earlier ones are doing.

    Latency counts from the scheduled time, not the actual send, so a stalled client or server
    cannot hide its own delay (no coordinated omission). `max_in_flight` bounds the connections when
    the server falls behind (as wrk2's fixed connections do): a request due while all are busy waits
    for one, and that wait counts in its latency too. `answer_timeout`: seconds after the last
    launch to wait for the answers; the requests still waiting then are cancelled and counted as
    errors (UNANSWERED), so an overloaded server cannot hold a run for many minutes.
    """
    offsets = schedule(rate, duration)
    start_perf = time.perf_counter() + 0.05
    start_wall = time.time() + 0.05
    run = Run(started_wall=start_wall)
    tasks: list[asyncio.Task] = []
    slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None

    async def post(i: int, due: float) -> Sample:
        headers = make_headers(i) if make_headers else None
        wall = start_wall + offsets[i]
        if slots is None:
            return await _post(clients, url, i, make_body(i), due, wall, headers)
        async with slots:
            return await _post(clients, url, i, make_body(i), due, wall, headers)

    run.max_launch_lag_s = await drive(offsets, lambda i, due: tasks.append(asyncio.create_task(post(i, due))),
                                       start=start_perf)
    if tasks and answer_timeout is not None:
        _done, late = await asyncio.wait(tasks, timeout=answer_timeout)
        for task in late:
            task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    now = time.perf_counter()
    run.samples = [r if isinstance(r, Sample) else
                   Sample(i, 0, now - (start_perf + offsets[i]), start_wall + offsets[i],
                          error=UNANSWERED if isinstance(r, asyncio.CancelledError) else type(r).__name__)
                   for i, r in enumerate(results)]
    run.elapsed_s = now - start_perf
    return run
