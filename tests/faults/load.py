"""A steady stream of reports, as hotline operators' clients send them, while a fault is injected.

Reports go out at a fixed rate for a bounded time, from a thread of their own (its own event loop), so the
test's thread stays free to kill, freeze and restart processes. Every report carries an Idempotency-Key and
is retried with that key until intake answers 2xx: a connection error, a timeout, a 5xx, a 409 (a twin with
the key in flight) or a 429 is retried; any other 4xx is a rejection and is kept as such. So the ground truth
is the set of reports the client believes accepted, each with the case intake answered with."""
from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from schemas.geography import communes

RETRYABLE = {409, 429}


@dataclass
class Report:
    """One report, and what became of it from the client's side."""

    index: int
    key: str  # the Idempotency-Key every attempt carries
    province: str
    body: dict
    victims: int
    attempts: int = 0
    status: int | None = None  # the answer that ended it: 201 (created) or 200 (a retry replayed)
    case_id: str | None = None
    case_number: str | None = None
    rejected: str | None = None  # a 4xx that is no reason to retry: the report was refused
    failures: Counter = field(default_factory=Counter)  # why attempts failed: "http-503", "ConnectError", ...

    @property
    def accepted(self) -> bool:
        return self.case_id is not None


def reports_for(tag: str, provinces: tuple[str, ...], count: int, seed: int) -> list[Report]:
    """`count` reports over `provinces`, a deterministic mix (by `seed`) of what operators record: most
    with a commune and nothing else, some with victims (a child, needs), some without a commune, some
    with violence. No emergencies: an emergency's support units depend on opening hours, and so on the
    minute referral matches it, which the expected referrals could then not pin down."""
    rng = random.Random(seed)
    places = {p: sorted(c for c, (_name, province) in communes().items() if province == p)[:40] for p in provinces}
    out = []
    for i in range(count):
        province = provinces[i % len(provinces)]
        body: dict = {"province_code": province, "channel": rng.choice(["phone", "phone", "chat", "sms", "web_form"])}
        roll = rng.random()
        victims: list[dict] = []
        if roll < 0.65:  # the commune police and the commune People's Committee
            body["commune_code"] = rng.choice(places[province])
        elif roll < 0.75:  # a child: high urgency, the province police, child protection, a shelter
            body["commune_code"] = rng.choice(places[province])
            victims = [{"sex": "female", "age": 15, "needs": ["shelter"]}]
        elif roll < 0.85:  # adults, one needing support nearby
            body["commune_code"] = rng.choice(places[province])
            victims = [{"sex": "male", "age": 30, "needs": [rng.choice(["medical", "legal_aid"])]},
                       {"sex": "female", "age": 24}]
        elif roll < 0.93:  # no commune: the province police instead of the commune's
            body["exploitation"] = ["forced_labour"]
        else:  # violence: high urgency, the province police too
            body |= {"commune_code": rng.choice(places[province]), "violence": True}
        if victims:
            body["victims"] = victims
        out.append(Report(i, f"{tag}-{i:05d}", province, body, len(victims)))
    return out


class LoadDriver:
    """Posts `reports` to intake at `rate` per second from a thread of its own. `urls` is read at each
    attempt (a list the test may change, like a load balancer's targets); attempts go round it, so a
    retry after a connection error tries the next replica."""

    def __init__(self, urls: list[str], headers: dict[str, str], reports: list[Report], rate: float,
                 give_up_s: float = 240.0):
        self.urls = urls
        self.headers = headers
        self.reports = reports
        self.rate = rate
        self.give_up_s = give_up_s
        self.started_at = 0.0
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def duration_s(self) -> float:
        return len(self.reports) / self.rate

    def start(self) -> LoadDriver:
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._main, name="fault-load", daemon=True)
        self._thread.start()
        return self

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def join(self, timeout: float | None = None) -> None:
        """Wait until every report is accepted, rejected, or given up on."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the load driver is still sending after {timeout}s")
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - re-raised by join() in the test's thread
            self._error = exc

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0), limits=limits) as http:
            tasks = []
            for report in self.reports:
                delay = self.started_at + report.index / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self._send(http, report)))
            await asyncio.gather(*tasks)

    async def _send(self, http: httpx.AsyncClient, report: Report) -> None:
        deadline = time.monotonic() + self.give_up_s
        headers = {**self.headers, "Idempotency-Key": report.key}
        while True:
            url = self.urls[(report.index + report.attempts) % len(self.urls)]
            report.attempts += 1
            try:
                response = await http.post(f"{url}/cases", json=report.body, headers=headers)
            except httpx.HTTPError as exc:
                report.failures[type(exc).__name__] += 1
            else:
                if response.status_code in (200, 201):
                    case = response.json()
                    report.status, report.case_id, report.case_number = (response.status_code, case["id"],
                                                                         case["case_number"])
                    return
                if response.status_code < 500 and response.status_code not in RETRYABLE:
                    report.status, report.rejected = response.status_code, response.text[:300]
                    return
                report.failures[f"http-{response.status_code}"] += 1
            if time.monotonic() > deadline:
                return  # never confirmed: the checker counts it as a problem
            await asyncio.sleep(min(0.1 * 2 ** min(report.attempts, 5), 2.0))


@dataclass(frozen=True)
class LoadFigures:
    sent: int
    accepted: int
    created: int  # answered 201
    replayed: int  # answered 200: an earlier attempt had recorded it, its answer was lost
    retried: int  # reports that needed more than one attempt
    failures: Counter
    rejected: list[Report]
    unconfirmed: list[Report]

    def words(self) -> str:
        why = ", ".join(f"{k} {v}" for k, v in self.failures.most_common(4))
        return (f"{self.accepted}/{self.sent} reports accepted ({self.retried} retried"
                f"{f': {why}' if why else ''}; {self.replayed} answered by a replay)")


def figures(reports: list[Report]) -> LoadFigures:
    failures: Counter = Counter()
    for r in reports:
        failures.update(r.failures)
    return LoadFigures(
        sent=len(reports), accepted=sum(r.accepted for r in reports),
        created=sum(r.status == 201 for r in reports), replayed=sum(r.status == 200 for r in reports),
        retried=sum(r.attempts > 1 for r in reports), failures=failures,
        rejected=[r for r in reports if r.rejected], unconfirmed=[r for r in reports if r.status is None],
    )
