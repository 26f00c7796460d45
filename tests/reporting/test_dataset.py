"""Reporting end to end: a generated data set of 10,000 contacts and 150 cases goes through the real
services (intake's API, referral's matching, agencies acting on the referral API, notify's alerts), and every
reporting endpoint returns exactly the totals the data set was built with. Then a rebuild replays every topic
and gives the same numbers.

The stack is shared with the rest of the session, so each count is compared as the change between a snapshot
taken before the data set is sent and one taken after. Contacts and cases fall in 2024-2025 (tests/reporting/
dataset.py: WINDOW), which no other test uses; referrals, alerts and outcomes are made on the day of the run,
so those tables are broken down by province and compared in the data set's provinces only (no other test
reports a case there). Referral's and notify's own APIs are the truth for what was referred and alerted."""
import asyncio
import csv
import io
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.db import create_engine
from services.reporting.projections import topics
from services.reporting.rebuild import request_rebuild, wait_caught_up
from services.reporting.stats.lag import EndOffsets, projection_lag
from tests.reporting import dataset as ds
from tests.reporting.dataset import ALL, PROVINCES, UNKNOWN, WINDOW, region_of, table

pytestmark = pytest.mark.timeout(900)

SEED = 111
N_CONTACTS = 10_000
N_CASES = 150
CONCURRENCY = 16
RUN = uuid.uuid4().hex[:8]  # keeps this run's operators (and so their idempotency keys) apart from any other
K = 5  # reporting_suppression_k
TERMINAL = {"delivered", "permanent-failure", "temporary-failure", "technical-failure"}  # an alert's final states
UNITS_CSV = Path(__file__).resolve().parents[2] / "services" / "referral" / "directory" / "data" / "agency_units.csv"
TIMES: dict[str, float] = {}  # phase → seconds, printed at the end of the module


@cache
def units() -> dict[str, dict[str, str]]:
    """Referral's seeded directory, by unit id: a referral names its unit by id, reporting counts its kind."""
    with UNITS_CSV.open(encoding="utf-8", newline="") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def today() -> date:
    return datetime.now(ds.VN).date()


def now_range() -> dict[str, str]:
    """Counts made on the day of the run: from the window's start to tomorrow (in case midnight passes)."""
    return {"from": WINDOW[0].isoformat(), "to": (today() + timedelta(days=1)).isoformat()}


WINDOW_RANGE = {"from": WINDOW[0].isoformat(), "to": WINDOW[1].isoformat()}


# ---- talking to the stack ----------------------------------------------------------------------------------

def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def bounded(items: Iterable, fn: Callable[[Any], Awaitable[Any]], concurrency: int) -> None:
    """`fn` over `items`, at most `concurrency` at once."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:
            await fn(item)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class Clients:
    """The running services as the data set's operator, supervisor, agencies and analyst use them."""

    def __init__(self, http: httpx.AsyncClient, stack):
        self.http, self.stack = http, stack
        self.intake, self.referral = stack.url("intake"), stack.url("referral")
        self.notify, self.reporting = stack.url("notify"), stack.url("reporting")
        self.operator = bearer(stack.token("operator", sub=f"op-ds-{RUN}"))
        self.supervisor = bearer(stack.token("supervisor", sub=f"sup-ds-{RUN}"))
        self.exact = bearer(stack.token("analyst", "admin", sub="rep-test"))
        self.analyst = bearer(stack.token("analyst", sub=f"ana-ds-{RUN}"))
        self._agency: dict[str, dict[str, str]] = {}

    def agency(self, unit_code: str) -> dict[str, str]:
        if unit_code not in self._agency:
            self._agency[unit_code] = bearer(self.stack.token("agency", sub=f"ag-{unit_code}",
                                                              agency_units=[unit_code]))
        return self._agency[unit_code]

    async def request(self, method: str, url: str, *, ok=(200,), **kw) -> httpx.Response:
        """A request; retried on a dropped connection when that is safe: a read, or a write with an
        Idempotency-Key (the others are retried by `change`, which first looks whether it was applied)."""
        retry = method == "GET" or "Idempotency-Key" in kw.get("headers", {})
        for attempt in range(5):
            try:
                r = await self.http.request(method, url, **kw)
            except httpx.TransportError:
                if attempt == 4 or not retry:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            if r.status_code in (502, 503, 504) and attempt < 4:
                await asyncio.sleep(0.5)
                continue
            assert ok is None or r.status_code in ok, f"{method} {url}: {r.status_code} {r.text[:500]}"
            return r
        raise AssertionError("unreachable")

    async def get(self, url: str, headers: dict, **params) -> Any:
        return (await self.request("GET", url, headers=headers, params=params)).json()

    # -- intake --

    async def contact_started_at(self, started_at: datetime) -> str | None:
        """The id of this operator's contact that started at that instant (unique in the data set), if any."""
        found = (await self.get(f"{self.intake}/contacts", self.operator, started_from=started_at.isoformat(),
                                started_to=(started_at + timedelta(microseconds=1)).isoformat()))["items"]
        return found[0]["id"] if found else None

    async def case(self, case_id: str) -> tuple[dict, str]:
        r = await self.request("GET", f"{self.intake}/cases/{case_id}", headers=self.supervisor)
        return r.json(), r.headers["etag"]

    async def referrals_of(self, case_id: str) -> list[dict]:
        return await self.get(f"{self.referral}/referrals", self.operator, case_id=case_id, limit=500)

    async def notifications_of(self, case_id: str) -> list[dict]:
        items, cursor = [], None
        while True:
            params = {"case_id": case_id, "limit": 500, **({"cursor": cursor} if cursor else {})}
            page = await self.get(f"{self.notify}/notifications", self.operator, **params)
            items += page["items"]
            if not (cursor := page["next_cursor"]):
                return items

    # -- reporting --

    async def stats(self, path: str, params: dict, *, exact: bool = True) -> dict:
        headers = self.exact if exact else self.analyst
        return await self.get(f"{self.reporting}/v1/{path}", headers, **params,
                              **({"suppress": "false"} if exact else {}))


class ContactPoster:
    """POST /contacts over plain keep-alive HTTP/1.1 connections. On a 2-core machine httpx spends about as
    much CPU per request as intake does recording it, which would double the time 10,000 contacts take."""

    def __init__(self, api: Clients):
        self.api = api
        url = httpx.URL(api.intake)
        self.host, self.port = url.host, url.port
        self.head = (f"POST /contacts HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                     f"Authorization: {api.operator['Authorization']}\r\nContent-Type: application/json\r\n")

    async def send(self, contacts: list[tuple[ds.Contact, dict, bool]], concurrency: int) -> dict[int, str]:
        """Each (contact, body, whether its id is wanted); returns the ids wanted, by contact index."""
        ids: dict[int, str] = {}
        queue = iter(contacts)

        async def worker() -> None:
            conn = None
            try:
                for contact, body, want in queue:
                    payload = json.dumps(body, separators=(",", ":")).encode()
                    request = f"{self.head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload
                    for attempt in range(5):
                        try:
                            if conn is None:
                                conn = await asyncio.open_connection(self.host, self.port)
                            conn[1].write(request)
                            status, close, content = await asyncio.wait_for(self._response(conn[0]), 60)
                        except (OSError, asyncio.IncompleteReadError, ValueError):  # TimeoutError is an OSError
                            conn = self._close(conn)
                            # The request may have been recorded before the connection dropped.
                            if (found := await self.api.contact_started_at(contact.started_at)) is not None:
                                ids[contact.index] = found
                                break
                            await asyncio.sleep(0.2 * (attempt + 1))
                            continue
                        if close:
                            conn = self._close(conn)
                        assert status == 201, (status, content[:500], body)
                        if want:
                            ids[contact.index] = json.loads(content)["id"]
                        break
                    else:
                        raise AssertionError(f"could not record the contact started at {contact.started_at}")
            finally:
                self._close(conn)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ids

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
        """(status, whether the server closes the connection, body) of one response."""
        status = int((await reader.readline()).split(b" ", 2)[1])
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise ValueError("chunked answers are not expected")
        return status, close, await reader.readexactly(length)

    @staticmethod
    def _close(conn) -> None:
        if conn is not None:
            conn[1].close()
        return None


# ---- what reporting answers, as numbers --------------------------------------------------------------------

@dataclass(frozen=True)
class Q:
    """One reporting table: its path and query, and whether only the data set's provinces are compared."""

    name: str
    path: str
    params: dict
    scoped: bool = False

    @property
    def by(self) -> tuple[str, ...]:
        return tuple(d for d in self.params.get("by", "").split(",") if d)

    @property
    def group(self) -> str:
        return self.params.get("group", "month")


def keyed(q: Q, rows: list[dict]) -> dict[tuple, Any]:
    """(period, *categories) → value (a count table) or the row (a timing table)."""
    return {(row["period"], *(str(row[d]) for d in q.by)): (row if "n" in row else row["value"]) for row in rows}


def is_margin(q: Q, key: tuple) -> bool:
    return any(v == ALL for v in key[1:]) or (q.group != "all" and key[0] == ALL)


def in_scope(q: Q, key: tuple) -> bool:
    return not q.scoped or key[1 + q.by.index("province")] in PROVINCES


def delta(after: dict[tuple, int], before: dict[tuple, int]) -> dict[tuple, int]:
    return {k: (after.get(k) or 0) - (before.get(k) or 0) for k in after.keys() | before.keys()}


def covers(margin: tuple, cell: tuple) -> bool:
    return all(m == ALL or m == c for m, c in zip(margin, cell))


def assert_counts(q: Q, after: list[dict], before: list[dict], expected: Counter, *, multi: bool = False) -> None:
    """The table's change equals `expected` cell by cell, and each margin it publishes is the sum of its
    cells (no margins for a breakdown where one entity falls in several categories)."""
    got = {k: v for k, v in delta(keyed(q, after), keyed(q, before)).items() if in_scope(q, k)}
    cells = {k: v for k, v in got.items() if not is_margin(q, k) and v}
    want = {(k[0], *map(str, k[1:])): v for k, v in expected.items() if v}
    assert want, f"{q.name}: the data set has nothing to count here, so the check would prove nothing"
    if cells != want:
        wrong = {k: (cells.get(k), want.get(k)) for k in cells.keys() | want.keys() if cells.get(k) != want.get(k)}
        raise AssertionError(f"{q.name}: {len(wrong)} cells differ (got, expected): {dict(sorted(wrong.items())[:20])}")
    margins = {k: v for k, v in got.items() if is_margin(q, k)}
    if multi:
        assert not margins, f"{q.name}: margins published over overlapping categories"
        return
    for key, value in margins.items():
        assert value == sum(v for k, v in want.items() if covers(key, k)), f"{q.name}: margin {key} is {value}"


# ---- the run: the data set sent, acted on, and the truth read back ----------------------------------------

@dataclass
class Run:
    data: ds.Dataset
    api: Clients
    before: dict[str, list[dict]]
    case_ids: dict[int, str] = field(default_factory=dict)
    cases: dict[int, dict] = field(default_factory=dict)  # intake's answer once settled
    referrals: dict[int, list[dict]] = field(default_factory=dict)  # referral's, per case
    notifications: dict[int, list[dict]] = field(default_factory=dict)  # notify's, per case
    outcomes: list[dict] = field(default_factory=list)  # what agencies recorded
    accepted: set[int] = field(default_factory=set)  # cases with a referral an agency accepted
    after: dict[str, list[dict]] = field(default_factory=dict)

    # -- items to count, from the truth --

    def referral_items(self) -> list[ds.Item]:
        out = []
        for index, referrals in self.referrals.items():
            for r in referrals:
                unit = units()[r["agency_unit_id"]]
                breached = r["acknowledged_at"] is not None and (
                    datetime.fromisoformat(r["acknowledged_at"]) > datetime.fromisoformat(r["acknowledge_by"]))
                out.append((ds.vn_day(datetime.fromisoformat(r["created_at"])), {
                    "agency_kind": unit["kind"], "agency_level": unit["level"] or UNKNOWN, "status": r["status"],
                    "province": r["province_code"], "region": region_of(r["province_code"]), "urgency": r["urgency"],
                    "cause": r["cause"], "decline_reason": r["decline_reason"] or "none", "escalated_to_level": "none",
                    "breached": str(breached).lower()}, 1))
        return out

    def case_items(self) -> list[ds.Item]:
        return [(c.day, self.case_dims(c), 1) for c in self.data.counted_cases]

    def referred_items(self) -> list[ds.Item]:
        """Cases referred: counted on the day of their first referral."""
        return [(min(ds.vn_day(datetime.fromisoformat(r["created_at"])) for r in self.referrals[c.index]),
                 self.case_dims(c), 1) for c in self.data.counted_cases if self.referrals[c.index]]

    def case_dims(self, c: ds.Case) -> dict[str, Any]:
        return {**c.dims(), "status": self.expected_status(c)}

    def expected_status(self, c: ds.Case) -> str:
        if c.merged or c.close_as:
            return "closed"
        return "in_progress" if c.to_in_progress or c.index in self.accepted else "referred"

    def outcome_items(self) -> list[ds.Item]:
        return [(today(), {"outcome": o["outcome"], "agency_kind": o["agency_kind"], "province": o["province"],
                           "region": region_of(o["province"]), "service": tuple(o.get("services") or (UNKNOWN,))}, 1)
                for o in self.outcomes]

    def assisted_items(self) -> list[ds.Item]:
        """People in cases an agency rescued, supported or repatriated, or an operator closed as rescued,
        assisted or returned: the larger of the victims recorded and the most an agency counted."""
        out = []
        for c in self.data.counted_cases:
            recorded = [o for o in self.outcomes if o["case_index"] == c.index
                        and o["outcome"] in ds.ASSISTED_REFERRAL_OUTCOMES]
            if not recorded and c.close_as not in ds.ASSISTED_CASE_OUTCOMES:
                continue
            people = max([len(c.final_victims), 1] + [o.get("victims") or 0 for o in recorded])
            out.append((today(), {"province": c.province, "region": region_of(c.province),
                                  "urgency": c.final_urgency}, people))
        return out

    def notification_items(self) -> list[ds.Item]:
        province = {r["id"]: r["province_code"] for rs in self.referrals.values() for r in rs}
        return [(ds.vn_day(datetime.fromisoformat(n["created_at"])), {
            "channel": n["channel"], "provider": n["provider"] or "none", "status": n["status"],
            "kind": n["kind"] or UNKNOWN, "province": province[n["referral_id"]],
            "region": region_of(province[n["referral_id"]])}, 1)
            for ns in self.notifications.values() for n in ns]


# ---- the tables compared -----------------------------------------------------------------------------------

def queries() -> list[Q]:
    w, n = WINDOW_RANGE, now_range()
    return [
        # contacts, by the Vietnam day they started, by the caller's province
        Q("contacts.month.channel", "stats/contacts", {**w, "group": "month", "by": "channel"}),
        Q("contacts.year.type", "stats/contacts", {**w, "group": "year", "by": "contact_type"}),
        Q("contacts.all.province", "stats/contacts", {**w, "group": "all", "by": "province"}),
        Q("contacts.year.region", "stats/contacts", {**w, "group": "year", "by": "region"}),
        Q("contacts.all.role", "stats/contacts", {**w, "group": "all", "by": "caller_role"}),
        Q("contacts.month.type.region", "stats/contacts", {**w, "group": "month", "by": "contact_type,region"}),
        Q("contacts.all", "stats/contacts", {**w, "group": "all"}),
        Q("contacts.week.channel", "stats/contacts", {"from": "2024-12-23", "to": "2025-01-12", "group": "week",
                                                      "by": "channel"}),
        Q("contacts.first-edge.day", "stats/contacts", {"from": "2023-12-31", "to": "2024-01-01", "group": "day"}),
        Q("contacts.last-edge.day", "stats/contacts", {"from": "2025-12-31", "to": "2026-01-01", "group": "day"}),
        Q("contacts.emergency.year", "stats/contacts", {**w, "group": "year", "category": "emergency",
                                                        "by": "channel"}),
        Q("contacts.79.month", "stats/contacts", {**w, "group": "month", "province": "79"}),
        Q("contacts.south.year.role", "stats/contacts", {**w, "group": "year", "region": "south",
                                                          "by": "caller_role"}),
        # cases, by the day they were reported
        Q("cases.month.province", "stats/cases", {**w, "group": "month", "by": "province"}),
        Q("cases.year.region", "stats/cases", {**w, "group": "year", "by": "region"}),
        Q("cases.all.urgency", "stats/cases", {**w, "group": "all", "by": "urgency"}),
        Q("cases.all.exploitation", "stats/cases", {**w, "group": "all", "by": "exploitation"}),
        Q("cases.year.exploitation", "stats/cases", {**w, "group": "year", "by": "exploitation"}),
        Q("cases.year.child", "stats/cases", {**w, "group": "year", "by": "child_involved"}),
        Q("cases.all.status", "stats/cases", {**w, "group": "all", "by": "status"}),
        Q("cases.all.channel.border.sea", "stats/cases", {**w, "group": "all", "by": "channel,cross_border,at_sea"}),
        Q("cases.forced_labour.year", "stats/cases", {**w, "group": "year", "category": "forced_labour"}),
        Q("cases.emergency.province", "stats/cases", {**w, "group": "all", "urgency": "emergency",
                                                      "by": "province"}),
        Q("cases.08.exploitation", "stats/cases", {**w, "group": "year", "province": "08", "by": "exploitation"}),
        Q("cases.north.urgency", "stats/cases", {**w, "group": "year", "region": "north", "by": "urgency"}),
        # potential victims
        Q("victims.year.sex", "stats/victims", {**w, "group": "year", "by": "sex"}),
        Q("victims.all.age_band", "stats/victims", {**w, "group": "all", "by": "age_band"}),
        Q("victims.all.child.sex", "stats/victims", {**w, "group": "all", "by": "is_child,sex"}),
        Q("victims.all.nationality", "stats/victims", {**w, "group": "all", "by": "nationality"}),
        Q("victims.all.need", "stats/victims", {**w, "group": "all", "by": "need"}),
        Q("victims.month.province", "stats/victims", {**w, "group": "month", "by": "province"}),
        Q("victims.all.region", "stats/victims", {**w, "group": "all", "by": "region"}),
        # made on the day of the run: only the data set's provinces
        Q("referred.province", "stats/cases-referred", {**n, "group": "all", "by": "province"}, True),
        Q("referred.province.urgency", "stats/cases-referred", {**n, "group": "all", "by": "province,urgency"}, True),
        Q("referred.province.exploitation", "stats/cases-referred",
          {**n, "group": "all", "by": "province,exploitation"}, True),
        Q("referred.province.status", "stats/cases-referred", {**n, "group": "all", "by": "province,status"}, True),
        Q("referrals.kind", "stats/referrals", {**n, "group": "all", "by": "province,agency_kind"}, True),
        Q("referrals.level", "stats/referrals", {**n, "group": "all", "by": "province,agency_level"}, True),
        Q("referrals.status", "stats/referrals", {**n, "group": "all", "by": "province,status"}, True),
        Q("referrals.cause.urgency", "stats/referrals", {**n, "group": "all", "by": "province,cause,urgency"}, True),
        Q("referrals.decline", "stats/referrals", {**n, "group": "all", "by": "province,decline_reason"}, True),
        Q("referrals.escalated.breached", "stats/referrals",
          {**n, "group": "all", "by": "province,escalated_to_level,breached"}, True),
        Q("outcomes.outcome", "stats/outcomes", {**n, "group": "all", "by": "province,outcome"}, True),
        Q("outcomes.kind", "stats/outcomes", {**n, "group": "all", "by": "province,agency_kind"}, True),
        Q("outcomes.service", "stats/outcomes", {**n, "group": "all", "by": "province,service"}, True),
        Q("assisted.province", "stats/victims-assisted", {**n, "group": "all", "by": "province"}, True),
        Q("assisted.province.urgency", "stats/victims-assisted", {**n, "group": "all", "by": "province,urgency"}, True),
        Q("alerts.channel.status", "stats/notifications", {**n, "group": "all", "by": "province,channel,status"}, True),
        Q("alerts.provider", "stats/notifications", {**n, "group": "all", "by": "province,provider"}, True),
        Q("alerts.kind", "stats/notifications", {**n, "group": "all", "by": "province,kind"}, True),
        # timings
        Q("timing.ack", "stats/referrals/acknowledgement", {**n, "group": "all", "by": "province"}, True),
        Q("timing.delivery", "stats/notifications/delivery", {**n, "group": "all", "by": "province,channel"}, True),
        Q("timing.referral", "stats/cases/time-to-referral", {**n, "group": "all", "by": "province"}, True),
    ]


QUERIES = {q.name: q for q in queries()}
SUMMARIES = {"summary.window": WINDOW_RANGE, **{f"summary.{p}": {"province": p} for p in PROVINCES}}


CTDC = "ctdc"  # the export over the window: its report, and how many rows it has


async def snapshot(api: Clients) -> dict[str, list[dict]]:
    """Every table of QUERIES, the summaries and the CTDC export's report, exact, as rows."""
    out: dict[str, list[dict]] = {}

    async def one(name: str) -> None:
        if name == CTDC:
            body = await api.stats("export/ctdc", WINDOW_RANGE, exact=False)
            out[name] = [{**body["report"], "rows": len(body["rows"])}]
        elif name.startswith("summary."):
            params = SUMMARIES[name] if name == "summary.window" else {**now_range(), **SUMMARIES[name]}
            out[name] = (await api.stats("stats/summary", params))["rows"]
        else:
            q = QUERIES[name]
            out[name] = (await api.stats(q.path, q.params))["rows"]

    await bounded([*QUERIES, *SUMMARIES, CTDC], one, 8)
    return out


async def caught_up(engine, ends: EndOffsets, timeout: float = 120.0) -> float:
    """Seconds until reporting's projections hold every event on the broker (its positions, read directly)."""
    started = time.monotonic()
    while True:
        async with AsyncSession(engine) as session:
            lag = await projection_lag(session, ends)
        if lag.events_behind == 0:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"reporting still {lag.events_behind} events behind"
        await asyncio.sleep(0.5)


async def stable_snapshot(api: Clients, engine, ends: EndOffsets, timeout: float = 60.0) -> dict[str, list[dict]]:
    """Every table, once reporting holds every event on the broker and two looks a moment apart agree (an
    event committed upstream may still be on its way to the broker)."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        await caught_up(engine, ends)
        now = await snapshot(api)
        if now == last:
            return now
        assert time.monotonic() < deadline, "reporting's figures kept changing"
        last = now
        await asyncio.sleep(1.0)


# ---- sending the data set ----------------------------------------------------------------------------------

async def send_cases(run: Run) -> None:
    """The contacts cases come from, then the cases (each with an Idempotency-Key: a retry is safe)."""
    api, data = run.api, run.data
    contact_ids = await ContactPoster(api).send(
        [(c, c.body, True) for c in data.contacts if c.for_case is not None], CONCURRENCY)

    async def case(c: ds.Case) -> None:
        body = {**c.body, **({"contact_id": contact_ids[c.contact]} if c.contact is not None else {})}
        r = await api.request("POST", f"{api.intake}/cases", ok=(200, 201), json=body,
                              headers={**api.operator, "Idempotency-Key": f"ds-{RUN}-{c.index}"})
        got = r.json()
        run.case_ids[c.index] = got["id"]
        # What intake worked out from the facts is what the data set expects.
        assert (got["urgency"], got["child_victim"]) == (c.urgency, c.flags["child_victim"] or any(
            v.is_child for v in c.victims)), (c.body, got)
        assert [(v["age_band"], v["is_child"]) for v in got["victims"]] == [(v.age_band, v.is_child)
                                                                           for v in c.victims]

    await bounded(data.cases, case, 16)


async def send_contacts(run: Run) -> None:
    """Every other contact; follow-ups name their case."""
    await ContactPoster(run.api).send([
        (c, c.body if c.follow_up_of is None else {**c.body, "case_id": run.case_ids[c.follow_up_of]}, False)
        for c in run.data.contacts if c.for_case is None], CONCURRENCY)


async def until(check: Callable[[], Awaitable[Any]], timeout: float, interval: float = 0.5, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(interval)


async def change(load: Callable[[], Awaitable[tuple[dict, str]]], done: Callable[[dict], bool],
                 act: Callable[[str], Awaitable[httpx.Response]]) -> None:
    """Read; unless `done` says the change is already there, make it with If-Match. When something else
    changed the resource meanwhile (412), or the connection dropped, read again and look again."""
    for _ in range(10):
        current, etag = await load()
        if done(current):
            return
        try:
            if (await act(etag)).status_code != 412:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("it kept changing under us")


async def act_on_cases(run: Run) -> None:
    """Once referral has referred every case: patches, merges, agencies' work, then operators' moves."""
    api, data = run.api, run.data

    async def referred(c: ds.Case) -> None:
        async def check():
            return await api.referrals_of(run.case_ids[c.index])
        await until(check, 120, what=f"case {c.index} referred")

    await bounded(data.cases, referred, 8)
    TIMES["cases referred"] = time.monotonic() - TIMES["t0"]

    async def patch(c: ds.Case) -> None:
        case_id = run.case_ids[c.index]
        await change(lambda: api.case(case_id),
                     lambda now: len(now["victims"]) == len(c.final_victims),
                     lambda etag: api.request("PATCH", f"{api.intake}/cases/{case_id}", ok=(200, 412),
                                              json=c.patch, headers={**api.operator, "If-Match": etag}))

    async def merge(c: ds.Case) -> None:
        case_id = run.case_ids[c.index]
        await change(lambda: api.case(case_id), lambda now: now["outcome"] == "duplicate",
                     lambda etag: api.request("POST", f"{api.intake}/cases/{case_id}/merge", ok=(200, 412),
                                              json={"into_case_id": run.case_ids[c.duplicate_of]},
                                              headers={**api.supervisor, "If-Match": etag}))

    await bounded([c for c in data.cases if c.patch] + [c for c in data.cases if c.merged],
                  lambda c: patch(c) if c.patch else merge(c), 8)

    async def agencies(c: ds.Case) -> None:
        for r in sorted(await api.referrals_of(run.case_ids[c.index]), key=lambda r: r["agency_unit_id"]):
            unit = units()[r["agency_unit_id"]]
            plan = ds.agency_plan(data.seed, c.index, unit["code"])
            await follow_plan(run, c, r, unit, plan)

    await bounded([c for c in data.cases if not c.merged and not c.patch], agencies, 8)

    async def operator(c: ds.Case) -> None:
        case_id = run.case_ids[c.index]
        move = {"status": "closed", "outcome": c.close_as} if c.close_as else {"status": "in_progress"}
        # (an accepted referral may have moved it to in progress already)
        await change(lambda: api.case(case_id), lambda now: now["status"] == move["status"],
                     lambda etag: api.request("POST", f"{api.intake}/cases/{case_id}/status", ok=(200, 412),
                                              json=move, headers={**api.operator, "If-Match": etag}))

    await bounded([c for c in data.cases if c.close_as or c.to_in_progress], operator, 8)


RESPONDED = {"acknowledged", "accepted", "declined", "closed"}


async def follow_plan(run: Run, c: ds.Case, referral: dict, unit: dict, plan: ds.AgencyPlan) -> None:
    """What the unit's staff do with the referral through the agency API, each step with the ETag read."""
    api = run.api
    headers = api.agency(unit["code"])
    url = f"{api.referral}/agency/referrals/{referral['id']}"

    async def load():
        r = await api.request("GET", url, headers=headers)
        return r.json(), r.headers["etag"]

    async def step(action: str, done: Callable[[dict], bool], body: dict | None = None, ok=(200,)) -> None:
        await change(load, done, lambda etag: api.request("POST", f"{url}/{action}", ok=(*ok, 412), json=body,
                                                          headers={**headers, "If-Match": etag}))

    if plan.acknowledge:
        await step("acknowledge", lambda now: now["status"] in RESPONDED)
    if plan.decline:
        await step("decline", lambda now: now["status"] == "declined", {"reason": plan.decline})
    if plan.accept:
        await step("accept", lambda now: now["status"] in ("accepted", "closed"))
        run.accepted.add(c.index)
        for i, outcome in enumerate(plan.outcomes):
            await step("outcomes", lambda now: len(now["outcomes"]) > i, outcome, ok=(201,))
            run.outcomes.append({**outcome, "case_index": c.index, "referral_id": referral["id"],
                                 "agency_kind": unit["kind"], "province": referral["province_code"]})
        if plan.close:
            await step("close", lambda now: now["status"] == "closed")


async def read_truth(run: Run) -> tuple:
    """Referral's, notify's and intake's view of every case of the data set."""
    api = run.api

    async def one(c: ds.Case) -> None:
        case_id = run.case_ids[c.index]
        run.referrals[c.index], run.notifications[c.index], (run.cases[c.index], _) = await asyncio.gather(
            api.referrals_of(case_id), api.notifications_of(case_id), api.case(case_id))

    await bounded(run.data.cases, one, 8)
    return (tuple((r["id"], r["status"], r["version"]) for i in sorted(run.referrals) for r in run.referrals[i]),
            tuple((n["id"], n["status"]) for i in sorted(run.notifications) for n in run.notifications[i]),
            tuple((c["id"], c["version"]) for c in run.cases.values()))


async def settle(run: Run, timeout: float = 120) -> None:
    """Until every referral has its alerts and each alert its final state, every referral an alert reached is
    past `created`, every case is where its operators and agencies left it, and nothing changed between two
    looks a second apart."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        state = await read_truth(run)
        alerts = defaultdict(list)
        for n in (n for ns in run.notifications.values() for n in ns):
            alerts[n["referral_id"]].append(n)
        referrals = [r for rs in run.referrals.values() for r in rs]
        unalerted = [r for r in referrals if not alerts[r["id"]]]
        on_their_way = [n for ns in alerts.values() for n in ns if n["status"] not in TERMINAL]
        unmarked = [r for r in referrals if r["status"] == "created"
                    and any(n["status"] == "delivered" for n in alerts[r["id"]])]
        cases = [c.index for c in run.data.cases if run.cases[c.index]["status"] != run.expected_status(c)]
        done = not (unalerted or on_their_way or unmarked or cases)
        if done and state == last:
            return
        assert time.monotonic() < deadline, (
            f"not settled: {len(unalerted)} referrals without an alert, {len(on_their_way)} alerts on their way, "
            f"{len(unmarked)} referrals delivered but not notified, cases not where they were left: {cases}")
        last = state if done else None
        await asyncio.sleep(1.0)


@pytest.fixture(scope="module")
async def engine(stack):
    engine = create_engine(stack.database_url, 2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def ends(stack):
    ends = EndOffsets(stack.bootstrap, topics(), 0)
    yield ends
    await ends.close()


@pytest.fixture(scope="module")
async def run(stack, engine, ends):
    data = ds.generate(SEED, N_CONTACTS, N_CASES)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        api = Clients(http, stack)
        await caught_up(engine, ends)
        TIMES["t0"] = t0 = time.monotonic()
        run = Run(data, api, await snapshot(api))
        await send_cases(run)
        TIMES["cases sent"] = time.monotonic() - t0
        # The contacts go while referral, notify and the agencies work on the cases.
        await asyncio.gather(send_contacts(run), act_on_cases(run))
        TIMES["contacts sent, cases acted on"] = time.monotonic() - t0
        await settle(run)
        TIMES["settled"] = time.monotonic() - t0
        run.after = await stable_snapshot(api, engine, ends)
        TIMES["reporting caught up"] = time.monotonic() - t0
        yield run
    print("\ntest_dataset: phases (s):", {k: round(v, 1) for k, v in TIMES.items() if k != "t0"},
          f"; {len(data.contacts)} contacts, {len(data.cases)} cases, "
          f"{sum(map(len, run.referrals.values()))} referrals, {sum(map(len, run.notifications.values()))} alerts, "
          f"{len(run.outcomes)} outcomes")


# ---- the checks --------------------------------------------------------------------------------------------

def check(run: Run, name: str, items: list[ds.Item], keep=None, *, multi: bool = False) -> None:
    q = QUERIES[name]
    start = date.fromisoformat(q.params["from"])
    end = date.fromisoformat(q.params["to"])
    filters = {f: q.params[f] for f in ("province", "region", "category", "urgency") if f in q.params}

    def kept(day: date, dims: dict) -> bool:
        if not start <= day <= end:
            return False
        for f, v in filters.items():
            dim = {"category": "contact_type" if q.path == "stats/contacts" else "exploitation"}.get(f, f)
            value = dims[dim]
            if not (v in value if isinstance(value, tuple) else value == v):
                return False
        return keep is None or keep(day, dims)

    expected = table(items, q.group, q.by, kept)
    assert_counts(q, run.after[name], run.before[name], expected, multi=multi)


def test_the_data_set_is_as_big_as_promised(run):
    in_window = [c for c in run.data.contacts if WINDOW[0] <= c.day <= WINDOW[1]]
    assert len(in_window) >= 10_000 and len(run.data.cases) == N_CASES
    assert len({c.day for c in in_window}) > 600  # nearly every day of two years
    assert sum(len(rs) for rs in run.referrals.values()) > 2 * N_CASES
    assert sum(len(ns) for ns in run.notifications.values()) > 4 * N_CASES
    # What intake holds is what the data set meant: facts after patches, statuses after everyone acted.
    for c in run.data.cases:
        got = run.cases[c.index]
        assert (got["status"], got["outcome"]) == (
            run.expected_status(c), "duplicate" if c.merged else c.close_as), c.index
        assert (got["urgency"], tuple(sorted(got["exploitation"])), got["child_victim"]) == (
            c.final_urgency, c.final_exploitation, c.child_involved), c.index
        assert [v["age_band"] for v in got["victims"]] == [v.age_band for v in c.final_victims]


def test_contacts_match_every_breakdown(run):
    items = run.data.contact_items()
    for name in [n for n in QUERIES if n.startswith("contacts.")]:
        check(run, name, items)
    # The edges: Vietnam's midnight, not UTC's, starts a day.
    first = {r["period"]: r["value"] for r in run.after["contacts.first-edge.day"]}
    before = {r["period"]: r["value"] for r in run.before["contacts.first-edge.day"]}
    assert first["2024-01-01"] - before.get("2024-01-01", 0) == sum(c.day == WINDOW[0] for c in run.data.contacts)
    assert first["2023-12-31"] - before.get("2023-12-31", 0) == 1


def test_cases_match_every_breakdown(run):
    items = run.case_items()
    for name in [n for n in QUERIES if n.startswith("cases.")]:
        check(run, name, items, multi="exploitation" in QUERIES[name].by)
    merged = sum(c.merged for c in run.data.cases)
    q = QUERIES["cases.all.urgency"]
    assert merged and delta(keyed(q, run.after[q.name]), keyed(q, run.before[q.name]))[(ALL, ALL)] == N_CASES - merged


def test_victims_match_every_breakdown(run):
    items = run.data.victim_items()
    for name in [n for n in QUERIES if n.startswith("victims.")]:
        check(run, name, items, multi="need" in QUERIES[name].by)


def test_cases_referred_match_referrals_source_of_truth(run):
    items = run.referred_items()
    assert len(items) == len(run.data.counted_cases)  # every case was referred somewhere
    for name in [n for n in QUERIES if n.startswith("referred.")]:
        check(run, name, items, multi="exploitation" in QUERIES[name].by)


def test_referrals_match_referral_service(run):
    items = run.referral_items()
    causes = Counter(dims["cause"] for _, dims, _ in items)
    statuses = Counter(dims["status"] for _, dims, _ in items)
    assert causes["reroute"] and statuses["declined"] and statuses["closed"] and statuses["acknowledged"]
    for name in [n for n in QUERIES if n.startswith("referrals.")]:
        check(run, name, items)


def test_outcomes_and_victims_assisted_match(run):
    recorded = Counter((o["referral_id"], o["outcome"]) for o in run.outcomes)
    agencies_say = Counter((r["id"], o["outcome"]) for rs in run.referrals.values() for r in rs
                           for o in agency_outcomes(run, r))
    assert recorded == agencies_say
    for name in [n for n in QUERIES if n.startswith("outcomes.")]:
        check(run, name, run.outcome_items(), multi="service" in QUERIES[name].by)
    for name in [n for n in QUERIES if n.startswith("assisted.")]:
        check(run, name, run.assisted_items())


def agency_outcomes(run: Run, referral: dict) -> list[dict]:
    return [o for o in run.outcomes if o["referral_id"] == referral["id"]]


def test_notifications_match_notify_service(run):
    items = run.notification_items()
    assert {dims["channel"] for _, dims, _ in items} >= {"sms", "email"}
    for name in [n for n in QUERIES if n.startswith("alerts.")]:
        check(run, name, items)


def test_summary_figures_match(run):
    def figures(rows: list[dict]) -> dict[str, int]:
        return {r["figure"]: r["value"] for r in rows}

    def change(name: str) -> dict[str, int]:
        after, before = figures(run.after[name]), figures(run.before[name])
        return {f: v - (before.get(f) or 0) for f, v in after.items()}

    contacts = [c for c in run.data.contacts if WINDOW[0] <= c.day <= WINDOW[1]]
    window = change("summary.window")
    assert window == {
        "contacts": len(contacts), **{f"contacts.{t}": sum(c.contact_type == t for c in contacts)
                                      for t in ds.CONTACT_TYPES},
        "cases_reported": len(run.data.counted_cases), "potential_victims": len(run.data.victim_items()),
        # referred, assisted, alerted and recorded on the day of the run, not in the window
        "cases_referred": 0, "victims_assisted": 0, "referrals": 0, "alerts": 0,
        **{f"outcomes.{o}": 0 for o in ("investigation_opened", "victims_rescued", "victims_supported",
                                        "repatriated", "not_substantiated")}}
    assisted = run.assisted_items()
    referrals, alerts = run.referral_items(), run.notification_items()
    for p in PROVINCES:
        mine = [c for c in contacts if c.province == p] + [
            c for c in run.data.contacts if c.province == p and c.day == date(2026, 1, 1)]
        cases = [c for c in run.data.counted_cases if c.province == p]
        outcomes = Counter(o["outcome"] for o in run.outcomes if o["province"] == p)
        assert change(f"summary.{p}") == {
            "contacts": len(mine), **{f"contacts.{t}": sum(c.contact_type == t for c in mine)
                                      for t in ds.CONTACT_TYPES},
            "cases_reported": len(cases), "cases_referred": len(cases),
            "potential_victims": sum(len(c.final_victims) for c in cases),
            "victims_assisted": sum(w for _, dims, w in assisted if dims["province"] == p),
            "referrals": sum(dims["province"] == p for _, dims, _ in referrals),
            "alerts": sum(dims["province"] == p for _, dims, _ in alerts),
            **{f"outcomes.{o}": outcomes[o] for o in ("investigation_opened", "victims_rescued",
                                                       "victims_supported", "repatriated", "not_substantiated")},
        }, p


def percentile(values: list[float], p: float) -> float | None:
    """PostgreSQL's percentile_cont."""
    if not values:
        return None
    values = sorted(values)
    at = p * (len(values) - 1)
    low = int(at)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (at - low)


def seconds(later: str | None, earlier: str) -> float | None:
    return None if later is None else (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


def assert_timing(q: Q, run: Run, expected: dict[tuple, dict[str, Any]], tolerance_s: float = 1.0) -> None:
    """Counts exactly (as the change since before); times within `tolerance_s` (the event's time, which
    reporting measures from, is taken a moment after the row's), where no other data shares the row."""
    after, before = keyed(q, run.after[q.name]), keyed(q, run.before[q.name])
    rows = {k: v for k, v in after.items() if in_scope(q, k)}
    assert expected and {k for k, v in rows.items() if v["n"] - (before.get(k) or {}).get("n", 0)} == set(expected)
    times_compared = 0
    for key, want in expected.items():
        got, was = rows[key], before.get(key) or {}
        for name, value in want.items():
            if name.endswith("_s") or name.endswith("_rate"):
                if was.get("n"):
                    continue  # shared with rows from before: the times are not the data set's alone
                assert (got[name] is None) == (value is None), (q.name, key, name, got[name], value)
                if value is not None:
                    assert abs(got[name] - value) <= (tolerance_s if name.endswith("_s") else 0.0001), (
                        q.name, key, name, got[name], value)
                    times_compared += 1
            else:
                assert got[name] - (was.get(name) or 0) == value, (q.name, key, name, got[name], value)
    # Where no other test's data shares the rows (a fresh stack), the times were compared too.
    assert times_compared or all((before.get(k) or {}).get("n") for k in expected), q.name


def test_timings_match(run):
    period = "all"
    ack: dict[tuple, dict] = {}
    by_province = defaultdict(list)
    for rs in run.referrals.values():
        for r in rs:
            by_province[r["province_code"]].append(r)
    for p, rs in by_province.items():
        times = [seconds(r["acknowledged_at"], r["created_at"]) for r in rs if r["acknowledged_at"]]
        ack[(period, p)] = {"n": len(rs), "responded": len(times), "breached": 0, "within_deadline": len(times),
                            "within_deadline_rate": round(len(times) / len(rs), 4),
                            **{f"p{x}_s": percentile(times, x / 100) for x in (50, 90, 99)}}
    assert_timing(QUERIES["timing.ack"], run, ack)

    province = {r["id"]: r["province_code"] for rs in run.referrals.values() for r in rs}
    alerts = defaultdict(list)
    for ns in run.notifications.values():
        for n in ns:
            alerts[(period, province[n["referral_id"]], n["channel"])].append(n)
    delivery = {}
    for key, ns in alerts.items():
        times = [seconds(n["delivered_at"], n["created_at"]) for n in ns if n["delivered_at"]]
        delivery[key] = {"n": len(ns), "delivered": len(times),
                         "failed": sum(n["status"].endswith("failure") for n in ns),
                         "delivered_rate": round(len(times) / len(ns), 4),
                         **{f"p{x}_s": percentile(times, x / 100) for x in (50, 90, 99)}}
    assert_timing(QUERIES["timing.delivery"], run, delivery)

    referred = defaultdict(list)
    for c in run.data.counted_cases:
        first = min(run.referrals[c.index], key=lambda r: r["created_at"])
        referred[(period, c.province)].append(seconds(first["created_at"], run.cases[c.index]["reported_at"]))
    assert_timing(QUERIES["timing.referral"], run, {
        key: {"n": len(ts), "with_report_time": len(ts), **{f"p{x}_s": percentile(ts, x / 100) for x in (50, 90, 99)}}
        for key, ts in referred.items()})


async def test_csv_is_the_json(run):
    api = run.api
    for name, accept in (("contacts.month.type.region", False), ("victims.all.need", True),
                         ("timing.delivery", False)):
        q = QUERIES[name]
        params = {**q.params, "suppress": "false"}
        body = (await api.request("GET", f"{api.reporting}/v1/{q.path}", headers=api.exact, params=params)).json()
        extra = {"headers": {**api.exact, "Accept": "text/csv"}} if accept else {"headers": api.exact}
        r = await api.request("GET", f"{api.reporting}/v1/{q.path}", params={**params, **({} if accept else
                                                                                          {"format": "csv"})}, **extra)
        assert r.headers["content-type"].startswith("text/csv") and "X-Projection-Checked-At" in r.headers
        rows = list(csv.DictReader(io.StringIO(r.text)))

        def text(v: Any) -> str:
            return "suppressed" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

        assert rows == [{k: text(v) for k, v in row.items()} for row in body["rows"]], name


SUB_COUNTS = ("n", "responded", "breached", "within_deadline", "delivered", "failed", "with_report_time")


async def test_suppressed_answers_publish_only_exact_numbers_of_k_or_more(run):
    """An analyst's answers, suppressed: every number they publish is the exact one, and every number below k
    is withheld (with as many more as it takes, which are also withheld)."""
    api = run.api
    published = withheld = 0

    def compare(name: str, seen: dict, truth: dict) -> None:
        nonlocal published, withheld
        assert seen.keys() == truth.keys(), name
        for key, value in seen.items():
            if isinstance(value, dict):  # a timing row: its number and each sub-count
                pairs = [(value[f], truth[key][f]) for f in SUB_COUNTS if f in value]
            else:
                pairs = [(value, truth[key])]
            for shown, true in pairs:
                if shown is None:
                    withheld += 1
                else:
                    published += 1
                    assert shown == true and true >= K, (name, key, shown, true)

    async def one(name: str) -> None:
        if name.startswith("summary."):
            path, params = "stats/summary", {**now_range(), **SUMMARIES[name]}
        else:
            path, params = QUERIES[name].path, QUERIES[name].params
        exact, shown = await asyncio.gather(api.stats(path, params), api.stats(path, params, exact=False))
        assert shown["suppression"]["applied"] and shown["suppression"]["k"] == K
        assert exact["suppression"] == {**exact["suppression"], "applied": False}
        if name.startswith("summary."):
            compare(name, {r["figure"]: r["value"] for r in shown["rows"]},
                    {r["figure"]: r["value"] for r in exact["rows"]})
        else:
            compare(name, keyed(QUERIES[name], shown["rows"]), keyed(QUERIES[name], exact["rows"]))

    await bounded([*QUERIES, "summary.08", "summary.82"], one, 8)
    assert published > 100 and withheld > 100


async def test_ctdc_export_counts_every_victim_of_the_window(run):
    [report], [before] = run.after[CTDC], run.before[CTDC]
    assert report["records_in"] - before["records_in"] == len(run.data.victim_items())
    assert report["records_out"] + report["records_suppressed"] == report["records_in"]
    assert report["rows"] == report["records_out"] and report["records_suppressed"] < report["records_in"]
    assert report["smallest_class_size"] >= report["k"]


async def test_stats_lists_what_can_be_counted(run):
    """GET /v1/stats: every measure, with the breakdowns and filters this test counts by."""
    listed = {m["name"]: m for m in await run.api.get(f"{run.api.reporting}/v1/stats", run.api.analyst)}
    for q in QUERIES.values():
        measure = q.path.removeprefix("stats/")
        if measure in listed:
            assert set(q.by) <= set(listed[measure]["by"]), q.name
            assert {f for f in ("province", "region", "category", "urgency") if f in q.params} <= set(
                listed[measure]["filters"]), q.name
    assert set(listed) == {"contacts", "cases", "cases-referred", "victims", "victims-assisted", "referrals",
                           "outcomes", "notifications"}


# ---- rebuild -----------------------------------------------------------------------------------------------

REBUILT = [  # over all time: every test's data, not only the data set's
    ("stats/contacts", {"group": "year", "by": "channel,contact_type"}),
    ("stats/contacts", {"group": "month", "by": "province"}),
    ("stats/cases", {"group": "all", "by": "province,status,urgency"}),
    ("stats/cases", {"group": "year", "by": "exploitation"}),
    ("stats/victims", {"group": "all", "by": "sex,age_band,is_child"}),
    ("stats/victims", {"group": "all", "by": "need"}),
    ("stats/cases-referred", {"group": "all", "by": "province"}),
    ("stats/victims-assisted", {"group": "all", "by": "province,urgency"}),
    ("stats/referrals", {"group": "all", "by": "agency_kind,status,cause"}),
    ("stats/referrals", {"group": "all", "by": "breached,escalated_to_level,decline_reason"}),
    ("stats/outcomes", {"group": "all", "by": "outcome,service"}),
    ("stats/notifications", {"group": "all", "by": "channel,status,kind,provider"}),
    ("stats/summary", {}),
    ("stats/referrals/acknowledgement", {"group": "all", "by": "province"}),
    ("stats/notifications/delivery", {"group": "all", "by": "channel"}),
    ("stats/cases/time-to-referral", {"group": "all", "by": "province"}),
]


async def all_time(api: Clients) -> list[list[dict]]:
    to = {"to": (today() + timedelta(days=1)).isoformat()}
    return [b["rows"] for b in await asyncio.gather(*(api.stats(path, {**params, **to}) for path, params in REBUILT))]


async def quiet(api: Clients, engine, ends: EndOffsets, timeout: float = 60.0):
    """(the data set's tables, the all-time tables, the broker's end offsets they hold exactly): read while
    no event arrived on reporting's topics."""
    deadline = time.monotonic() + timeout
    while True:
        offsets = await ends.get()
        await caught_up(engine, ends)
        mine, everyone = await asyncio.gather(snapshot(api), all_time(api))
        if await ends.get() == offsets:
            return mine, everyone, offsets
        assert time.monotonic() < deadline, "events kept arriving"


def scoped(name: str, rows: list[dict]) -> dict:
    """The rows of the data set's own: all of a window's table, its provinces' of a table made today."""
    q = QUERIES.get(name)
    if q is None:  # the summaries and the CTDC export
        return {i: row for i, row in enumerate(rows)}
    return {k: v for k, v in keyed(q, rows).items() if in_scope(q, k)}


async def test_a_rebuild_gives_equal_numbers(run, stack, engine, ends):
    """Empty every projection and replay every topic: every table is the same again. The data set's tables
    always; the all-time tables (every test's data) when no event arrived meanwhile."""
    api = run.api
    mine, everyone, offsets = await quiet(api, engine, ends)
    assert {n: scoped(n, rows) for n, rows in mine.items()} == {n: scoped(n, rows) for n, rows in run.after.items()}

    t0 = time.monotonic()
    generation = await request_rebuild(engine, "test_dataset")
    during = (await api.stats("stats/summary", {}))["lag"]
    assert during["rebuilding"] and during["events_behind"] != 0, during  # the answer says it is incomplete
    await wait_caught_up(engine, ends, 300)
    TIMES["rebuild"] = time.monotonic() - t0
    assert not (await api.stats("stats/summary", {}))["lag"]["rebuilding"]
    assert generation >= 2

    mine_again, everyone_again, offsets_again = await quiet(api, engine, ends)
    for name, rows in mine.items():
        assert scoped(name, mine_again[name]) == scoped(name, rows), name
    if offsets_again == offsets:  # nothing happened meanwhile: every number of every test is the same
        for (path, params), old, new in zip(REBUILT, everyone, everyone_again):
            assert new == old, (path, params)
    else:
        print("test_dataset: events arrived during the rebuild; all-time tables not compared")
