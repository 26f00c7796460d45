"""Ground truth after a fault: every effect of the reports the client believes accepted, counted in the
records the services keep and, for the alerts, in the SMTP sink's and the SMS gateway's own stores.

What is compared with what:
- cases: intake's case list for the run's provinces (GET /cases as a supervisor) against the client's
  accepted reports: each accepted report's case exists, once; no case the client does not know of.
- referrals: referral's GET /referrals?case_id= against what its dry-run (POST /matching/dry-run) says the
  same facts call for, unit by unit and rule by rule. The dry-run is the matching engine itself on the
  directory in force, with no side effect and no broker, database writes or retries in the way: what a
  fault cannot touch. (A fault-free baseline run would give the same sets at the cost of a second load;
  the dry-run gives them per case, whatever the mix.) Referrals are checked once per unit: the uniqueness
  the database enforces is exactly what a doubled event must not get past.
- intake's view: intake's record of each case's referrals (its consumer of referral's events) holds every
  referral once, seen created.
- alerts: each referral's first contacts (one per channel, the unit's most preferred; computed here from
  the directory API, GET /directory/units/{code}) must each have exactly one message in the sink of its
  channel, found by case number and address, and no other message of these cases may be there. notify's
  own records must hold each (referral, kind, channel, address) once. A further message is allowed only
  where a failure explains it: an alert to a unit's next contact after a failed alert
  (referral.contact-fallback), or a referral a level up, and its notice, after every alert of a referral
  failed (referral escalates at once then). Emails are counted by Message-ID: notify sends an email whose
  send a crash cut again under the same Message-ID (SMTP cannot be asked whether it took the first), and a
  second copy of one message is one message (the copies are counted in the summary). The one allowance,
  named and counted in the summary: an SMS through a provider that cannot be asked, which notify itself
  marked unconfirmed-after-crash (by design it is not sent twice), may have arrived or not; even then its
  unit must have been told by another alert of the referral, or the referral must have gone a level up.
- reporting: GET /v1/stats/summary per province, unsuppressed, against the counts above: cases reported and
  referred, potential victims, referrals, alerts (notify's notifications).
- dead letters: every `.dlq` topic read raw from the broker; an entry that arrived during the run is a
  problem, as nothing on this stack produces poison.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from devstack.topics import wanted_topics
from runtime.db import asyncpg_dsn
from tests.faults.load import Report, figures

CASE_NUMBER = re.compile(r"111-\d{4}-\d{6}")
FAILED = {"permanent-failure", "temporary-failure", "technical-failure"}
UNCONFIRMED = "unconfirmed-after-crash"  # notify's reconcile: an SMS cut by a crash, no lookup to ask
FIRST_KINDS = ("referral.created", "referral.rerouted")
FACT_FIELDS = ("province_code", "commune_code", "urgency", "exploitation", "means_of_control",
               "recruitment_channel", "immediate_danger", "violence", "abroad_country", "moving_across_border",
               "destination_country", "at_sea", "consent_share_identity")


# ---------------------------------------------------------------------------------------------------
async def dlq_ends(bootstrap: str) -> dict[TopicPartition, int]:
    """Where every dead-letter topic ends now: the run's entries are the ones after this."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t, n in wanted_topics().items() if t.endswith(".dlq") for p in range(n)]
        return dict(await consumer.end_offsets(parts))
    finally:
        await consumer.stop()


async def dlq_since(bootstrap: str, since: dict[TopicPartition, int]) -> list[dict]:
    """Every dead letter written after `since`, read raw, with its dead-letter headers."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = list(since)
        ends = await consumer.end_offsets(parts)
        wanted = [tp for tp in parts if ends[tp] > since[tp]]
        if not wanted:
            return []
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, since[tp])
        out: list[dict] = []
        deadline = time.monotonic() + 30
        while any([await consumer.position(tp) < ends[tp] for tp in wanted]) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    if r.offset < ends[TopicPartition(r.topic, r.partition)]:
                        headers = {k: v.decode(errors="replace") for k, v in r.headers or ()}
                        out.append({"topic": r.topic, "partition": r.partition, "offset": r.offset,
                                    "type": headers.get("ce_type"), "reason": headers.get("dlq_reason"),
                                    "consumer": headers.get("dlq_consumer"), "error": headers.get("dlq_error")})
        return out
    finally:
        await consumer.stop()


# ---------------------------------------------------------------------------------------------------
FINGERPRINT = """
WITH mine AS (SELECT id FROM intake.cases WHERE province_code = ANY($1::text[]))
SELECT
  (SELECT count(*) FROM mine) AS cases,
  (SELECT count(*) FROM referral.referrals WHERE case_id IN (SELECT id FROM mine)) AS referrals,
  (SELECT count(*) FROM intake.case_referrals WHERE case_id IN (SELECT id FROM mine)
      AND agency_unit_name IS NOT NULL) AS intake_referrals,
  (SELECT count(*) FROM notify.notifications WHERE case_id IN (SELECT id FROM mine)) AS alerts,
  (SELECT count(*) FROM notify.notifications WHERE case_id IN (SELECT id FROM mine)
      AND (status IN ('created', 'sending') OR leased_until IS NOT NULL)) AS in_flight,
  (SELECT count(*) FROM intake.outbox WHERE published_at IS NULL)
    + (SELECT count(*) FROM referral.outbox WHERE published_at IS NULL)
    + (SELECT count(*) FROM notify.outbox WHERE published_at IS NULL) AS unpublished,
  (SELECT count(*) FROM reporting.cases WHERE case_id IN (SELECT id FROM mine) AND reported) AS rep_cases,
  (SELECT count(*) FROM reporting.referrals WHERE case_id IN (SELECT id FROM mine) AND created) AS rep_referrals,
  (SELECT count(*) FROM reporting.notifications WHERE case_id IN (SELECT id FROM mine)) AS rep_alerts
"""


async def fingerprint(stack, provinces: tuple[str, ...], http: httpx.AsyncClient) -> dict:
    """Cheap counts of every record the check reads, to see when the platform has settled."""
    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        row = dict(await conn.fetchrow(FINGERPRINT, list(provinces)))
    finally:
        await conn.close()
    row["emails"] = len((await http.get(stack.smtp_messages_url)).json())
    row["sms"] = len((await http.get(stack.sms_messages_url)).json())
    return row


# ---------------------------------------------------------------------------------------------------
@dataclass
class Truth:
    """What one fault's check compared, and what it found."""

    fault: str
    load: str = ""
    cases: int = 0
    referrals: int = 0
    intake_referrals: int = 0
    emails: int = 0
    sms: int = 0
    alerts: int = 0
    reporting: dict = field(default_factory=dict)
    dlq: int = 0
    explained: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    settle_s: float = 0.0  # from the end of the load to the last check's end
    check_s: float = 0.0  # the last check alone
    notes: list[str] = field(default_factory=list)  # how the fault went: when, how long, what it refused

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        rep = self.reporting
        words = [
            f"{self.fault}: {'OK' if self.ok else f'{len(self.problems)} PROBLEMS'}",
            *self.notes, self.load,
            f"cases {self.cases}", f"referrals {self.referrals} (intake sees {self.intake_referrals})",
            f"messages: email {self.emails}, sms {self.sms} (alerts {self.alerts})",
            "reporting " + "/".join(str(rep.get(k, "?")) for k in ("cases_reported", "cases_referred",
                                                                     "potential_victims", "referrals", "alerts"))
            + " (reported/referred/victims/referrals/alerts)",
            f"dlq {self.dlq}", f"settled and checked in {self.settle_s:.0f}s (the check {self.check_s:.0f}s)",
        ]
        if self.explained:
            words.append("explained: " + "; ".join(self.explained))
        return " | ".join(w for w in words if w)


class Checker:
    """Reads every record the check needs; `check` compares them. One per run (it caches the directory)."""

    def __init__(self, stack, http: httpx.AsyncClient):
        self.stack = stack
        self.http = http
        self.staff = {"Authorization": f"Bearer {stack.token('supervisor', 'operator', sub='fault-checker')}"}
        self.admin = {"Authorization": f"Bearer {stack.token('admin', sub='fault-checker')}"}
        self.analyst = {"Authorization": f"Bearer {stack.token('analyst', 'admin', sub='fault-checker')}"}
        self._units: dict[str, dict] = {}
        self._dry_runs: dict[str, dict] = {}
        self._sem = asyncio.Semaphore(8)

    async def _get(self, url: str, headers: dict, **params) -> httpx.Response:
        async with self._sem:
            for attempt in range(5):
                response = await self.http.get(url, headers=headers, params=params)
                if response.status_code < 500:
                    break
                await asyncio.sleep(0.5 * (attempt + 1))
        assert response.status_code == 200, f"GET {url} {params}: {response.status_code} {response.text[:300]}"
        return response

    # -- the records ------------------------------------------------------------------------------
    async def cases(self, provinces: tuple[str, ...]) -> list[dict]:
        out = []
        for province in provinces:
            cursor = None
            while True:
                params = {"province_code": province, "limit": 200} | ({"cursor": cursor} if cursor else {})
                page = (await self._get(f"{self.stack.url('intake')}/cases", self.staff, **params)).json()
                out += page["items"]
                if not (cursor := page["next_cursor"]):
                    break
        return out

    async def referrals(self, case_id: str) -> list[dict]:
        return (await self._get(f"{self.stack.url('referral')}/referrals", self.staff, case_id=case_id,
                                limit=500)).json()

    async def notifications(self, case_id: str) -> list[dict]:
        out, cursor = [], None
        while True:
            params = {"case_id": case_id, "limit": 500} | ({"cursor": cursor} if cursor else {})
            page = (await self._get(f"{self.stack.url('notify')}/notifications", self.staff, **params)).json()
            out += page["items"]
            if not (cursor := page["next_cursor"]):
                return out

    async def unit(self, code: str) -> dict:
        if code not in self._units:
            self._units[code] = (await self._get(f"{self.stack.url('referral')}/directory/units/{code}",
                                                 self.admin)).json()
        return self._units[code]

    async def expected_units(self, case: dict) -> dict[str, list[str]]:
        """Unit code → rules, as referral's dry-run matches the case's facts (cached per set of facts)."""
        facts = {f: case[f] for f in FACT_FIELDS} | {
            "child_involved": case["child_victim"],
            "victims": [{k: v[k] for k in ("sex", "age_band", "is_child", "nationality", "needs")}
                        for v in case["victims"]],
            "at": case["reported_at"],
        }
        key = json.dumps({k: v for k, v in facts.items() if k != "at"}, sort_keys=True)
        if key not in self._dry_runs:
            async with self._sem:
                response = await self.http.post(f"{self.stack.url('referral')}/matching/dry-run", json=facts,
                                                headers=self.staff)
            assert response.status_code == 200, response.text
            self._dry_runs[key] = {u["code"]: sorted(u["rules"]) for u in response.json()["units"]}
        return self._dry_runs[key]

    async def unit_codes(self, unit_ids: list[str]) -> dict[str, str]:
        """Unit id → code, from referral's directory table (its API looks units up by code)."""
        conn = await asyncpg.connect(asyncpg_dsn(self.stack.database_url))
        try:
            rows = await conn.fetch("SELECT id::text, code FROM referral.agency_units WHERE id = ANY($1::uuid[])",
                                    sorted(set(unit_ids)))
        finally:
            await conn.close()
        return {r["id"]: r["code"] for r in rows}

    async def intake_referrals(self, case_ids: list[str]) -> list[tuple[str, str, bool]]:
        """intake's record of the cases' referrals (its consumer of referral's events)."""
        conn = await asyncpg.connect(asyncpg_dsn(self.stack.database_url))
        try:
            rows = await conn.fetch("SELECT referral_id::text, case_id::text, agency_unit_name IS NOT NULL AS seen "
                                    "FROM intake.case_referrals WHERE case_id = ANY($1::uuid[])", case_ids)
        finally:
            await conn.close()
        return [(r["referral_id"], r["case_id"], r["seen"]) for r in rows]

    async def summary(self, province: str) -> dict:
        response = await self._get(f"{self.stack.url('reporting')}/v1/stats/summary", self.analyst,
                                   province=province, suppress="false", group="all")
        return {row["figure"]: row["value"] for row in response.json()["rows"]}

    # -- the comparison ---------------------------------------------------------------------------
    async def check(self, truth: Truth, reports: list[Report], provinces: tuple[str, ...],
                    dlq_from: dict[TopicPartition, int]) -> Truth:
        problems, explained = [], []
        load = figures(reports)
        truth.load = load.words()
        for r in load.rejected:
            problems.append(f"report {r.key} rejected: {r.status} {r.rejected}")
        for r in load.unconfirmed:
            problems.append(f"report {r.key} never accepted after {r.attempts} attempts ({dict(r.failures)})")

        # Cases: one per accepted report, none besides.
        accepted = {r.case_id: r for r in reports if r.accepted}
        cases = await self.cases(provinces)
        seen = Counter(c["id"] for c in cases)
        for case_id, r in accepted.items():
            if seen[case_id] != 1:
                problems.append(f"report {r.key}: case {r.case_number} found {seen[case_id]} times in intake")
        for c in cases:
            if c["id"] not in accepted:
                problems.append(f"case {c['case_number']} ({c['province_code']}) answers no accepted report")
        answered = Counter(r.case_id for r in reports if r.accepted)
        problems += [f"{n} reports were answered with the one case {i}" for i, n in answered.items() if n > 1]
        truth.cases = len(cases)
        cases = [c for c in cases if c["id"] in accepted]

        # Referrals: exactly the units (and rules) the dry-run calls for, once each.
        ids = [c["id"] for c in cases]
        referrals_of = dict(zip(ids, await asyncio.gather(*(self.referrals(i) for i in ids)), strict=True))
        notes_of = dict(zip(ids, await asyncio.gather(*(self.notifications(i) for i in ids)), strict=True))
        expected_of = dict(zip(ids, await asyncio.gather(*(self.expected_units(c) for c in cases)), strict=True))
        code_of = await self.unit_codes([r["agency_unit_id"] for rs in referrals_of.values() for r in rs])
        codes = sorted({*code_of.values(), *(code for units in expected_of.values() for code in units)})
        units = dict(zip(codes, await asyncio.gather(*(self.unit(code) for code in codes)), strict=True))
        want_messages: Counter = Counter()  # (case number, channel, address) → messages the sinks must hold
        may_miss: Counter = Counter()  # of those, how many may be missing (unconfirmed after a crash, failed)
        unconfirmed: Counter = Counter()  # of those, how many notify marked unconfirmed after a crash
        told: dict[str, tuple] = {}  # referral → (case number, unit, its alerts' targets, escalated from)
        all_referrals = further = escalations = 0
        for c in cases:
            number, got, expected = c["case_number"], referrals_of[c["id"]], expected_of[c["id"]]
            all_referrals += len(got)
            notes = notes_of[c["id"]]
            by_referral = defaultdict(list)
            for n in notes:
                by_referral[n["referral_id"]].append(n)
            failed_all = {r["id"] for r in got if _all_failed(by_referral.get(r["id"], []))}
            matched = Counter(code_of[r["agency_unit_id"]] for r in got if r["cause"] == "matched")
            for code in expected:
                if matched[code] != 1:
                    problems.append(f"case {number}: {matched[code]} referrals to {code}, expected 1")
            for r in got:
                code = code_of[r["agency_unit_id"]]
                if r["cause"] == "matched":
                    if code not in expected:
                        problems.append(f"case {number}: a referral to {code}, which its rules do not call for")
                    elif sorted(r["rule_ids"]) != expected[code]:
                        problems.append(f"case {number}: referral to {code} by rules {r['rule_ids']}, the dry-run "
                                        f"says {expected[code]}")
                elif r["cause"] == "escalation" and r["previous_referral_id"] in failed_all:
                    escalations += 1  # every alert of the referral before it failed: referral escalated at once
                else:
                    problems.append(f"case {number}: a referral to {code} ({r['cause']}) nothing explains")

            # Alerts: notify's records, once per (referral, kind, channel, address); each referral's first
            # contacts alerted; any further alert explained by a failure before it.
            per_target = Counter((n["referral_id"], n["kind"], n["channel"], n["recipient"]) for n in notes)
            for (referral_id, kind, channel, address), n in per_target.items():
                if n > 1:
                    problems.append(f"case {number}: notify holds {n} {kind} alerts of referral {referral_id} to "
                                    f"{channel} {address}")
            escalated = {r["previous_referral_id"] for r in got if r["cause"] == "escalation"}
            for r in got:
                code = code_of[r["agency_unit_id"]]
                first = first_contacts(units[code]["contacts"], r["urgency"])
                mine = by_referral.pop(r["id"], [])
                for channel, address in first:
                    target = (number, channel, address)
                    want_messages[target] += 1
                    note = next((n for n in mine if n["kind"] in FIRST_KINDS
                                 and (n["channel"], n["recipient"]) == (channel, address)), None)
                    if note is None:
                        problems.append(f"case {number}: no alert of its referral to {code} for {channel} "
                                        f"{address} in notify")
                    elif note["provider_code"] == UNCONFIRMED:
                        may_miss[target] += 1
                        unconfirmed[target] += 1
                    elif note["status"] in FAILED:
                        problems.append(f"case {number}: the alert to {code} by {channel} failed: "
                                        f"{note['status']} {note['provider_code']}")
                firsts = set(first)
                for n in mine:
                    if n["kind"] in FIRST_KINDS and (n["channel"], n["recipient"]) in firsts:
                        continue
                    if n["kind"] in FIRST_KINDS:  # the next contact, after a failed alert (contact-fallback)
                        why = any(m["status"] in FAILED for m in mine if m is not n)
                    elif n["kind"] == "referral.escalated":
                        why = r["id"] in escalated or r["id"] in failed_all
                    else:
                        why = False
                    if not why:
                        problems.append(f"case {number}: a {n['kind']} alert to {code}'s {n['channel']} "
                                        f"{n['recipient']} that no failure or escalation explains")
                    further += 1
                    target = (number, n["channel"], n["recipient"])
                    want_messages[target] += 1
                    if n["provider_code"] == UNCONFIRMED or n["status"] in FAILED:
                        may_miss[target] += 1
                        unconfirmed[target] += n["provider_code"] == UNCONFIRMED
                told[r["id"]] = (number, code, [(number, ch, a) for ch, a in first]
                                 + [(number, n["channel"], n["recipient"]) for n in mine], r["id"] in escalated)
            for referral_id, stray in by_referral.items():
                problems.append(f"case {number}: {len(stray)} alert(s) of referral {referral_id}, which referral "
                                "does not list")
        if escalations:
            explained.append(f"{escalations} referrals one level up, each after every alert of the referral "
                             "before it had failed (referral escalates at once then)")

        truth.referrals = all_referrals
        truth.alerts = sum(len(n) for n in notes_of.values())

        # intake follows every referral once.
        followed = await self.intake_referrals([c["id"] for c in cases])
        truth.intake_referrals = sum(seen for _r, _c, seen in followed)
        known = {r["id"] for rs in referrals_of.values() for r in rs}
        followed_ids = {r for r, _c, seen in followed if seen}
        if followed_ids != known:
            problems.append(f"intake follows {len(followed_ids)} referrals, referral holds {len(known)}: "
                            f"missing {len(known - followed_ids)}, unknown {len(followed_ids - known)}")

        # The messages, counted where they arrived.
        numbers = {c["case_number"] for c in cases}
        got_messages: Counter = Counter()
        copies: Counter = Counter()  # (Message-ID, recipient) → copies the SMTP server took
        for m in (await self.http.get(self.stack.smtp_messages_url)).json():
            if (found := CASE_NUMBER.search(m["subject"])) and found.group() in numbers:
                for rcpt in m["rcpt_tos"]:
                    # A copy sent again after a crash carries the same Message-ID: one message, not two.
                    copy = (m["headers"].get("Message-ID") or m["id"], rcpt)
                    copies[copy] += 1
                    got_messages[(found.group(), "email", rcpt)] += copies[copy] == 1
        for m in (await self.http.get(self.stack.sms_messages_url)).json():
            if (found := CASE_NUMBER.search(m["body"])) and found.group() in numbers:
                got_messages[(found.group(), "sms", m["to"])] += 1
        truth.emails = sum(n for (_c, ch, _a), n in got_messages.items() if ch == "email")
        truth.sms = sum(n for (_c, ch, _a), n in got_messages.items() if ch == "sms")
        unconfirmed_arrived = unconfirmed_missing = 0
        for target in sorted(set(want_messages) | set(got_messages)):
            want, got, miss = want_messages[target], got_messages[target], may_miss[target]
            if want - miss <= got <= want:
                if unconfirmed[target]:
                    arrived = min(got - (want - miss), unconfirmed[target])
                    unconfirmed_arrived += arrived
                    unconfirmed_missing += unconfirmed[target] - arrived
                continue
            number, channel, address = target
            problems.append(f"case {number}: {got} {channel} message(s) to {address} in the sink, expected "
                            f"{want if not miss else f'{want - miss}..{want}'}")
        # Nothing lost for a unit: whatever a crash cut, each referral's unit was told by some alert, or the
        # referral went a level up.
        for number, code, targets, went_up in told.values():
            if not went_up and not any(got_messages[t] for t in targets):
                problems.append(f"case {number}: {code} was never told: none of its alerts reached a sink")
        if unconfirmed_arrived or unconfirmed_missing:
            explained.append(f"{unconfirmed_arrived + unconfirmed_missing} alerts cut by a crash and marked "
                             f"{UNCONFIRMED} by notify ({unconfirmed_arrived} had reached the sink, "
                             f"{unconfirmed_missing} had not)")
        if resent := sum(n - 1 for n in copies.values() if n > 1):
            explained.append(f"{resent} email copies sent again after a crash under the Message-ID of one already "
                             "counted (notify's reconcile: SMTP cannot be asked whether it took the first)")
        if further:
            explained.append(f"{further} further alerts, each after a failed one (a unit's next contact, or the "
                             "notice of an escalation)")

        # Reporting's totals against the records above, province by province.
        totals = Counter()
        for province in provinces:
            mine = [c for c in cases if c["province_code"] == province]
            want = {
                "cases_reported": len(mine),
                "cases_referred": sum(1 for c in mine if referrals_of[c["id"]]),
                "potential_victims": sum(len(c["victims"]) for c in mine),
                "referrals": sum(len(referrals_of[c["id"]]) for c in mine),
                "alerts": sum(len(notes_of[c["id"]]) for c in mine),
            }
            got = await self.summary(province)
            for figure, value in want.items():
                totals[figure] += got.get(figure) or 0
                if got.get(figure) != value:
                    problems.append(f"reporting {figure} for province {province}: {got.get(figure)}, "
                                    f"the records say {value}")
        truth.reporting = dict(totals)

        # Dead letters: none is explained on a stack of our own.
        letters = await dlq_since(self.stack.bootstrap, dlq_from)
        truth.dlq = len(letters)
        for d in letters[:20]:
            problems.append(f"dead letter on {d['topic']} from {d['consumer']} ({d['type']}): {d['reason']}: "
                            f"{(d['error'] or '')[:200]}")
        truth.problems, truth.explained = problems, explained
        return truth


def _all_failed(notes: list[dict]) -> bool:
    """Every alert of a referral failed (or was left unconfirmed by a crash): nobody at the unit was told."""
    return bool(notes) and all(n["status"] in FAILED for n in notes if n["channel"] in ("email", "sms"))


def first_contacts(contacts: list[dict], urgency: str) -> list[tuple[str, str]]:
    """Where a unit is alerted first (referral's rule, restated): its most preferred contact of each channel;
    in an emergency its 24/7 duty contacts come first."""
    ordered = sorted(contacts, key=lambda c: c["preference"])
    if urgency == "emergency":
        ordered.sort(key=lambda c: not c["duty_24_7"])
    first: dict[str, str] = {}
    for c in ordered:
        first.setdefault(c["channel"], c["address"])
    return list(first.items())


async def settle_and_check(stack, truth: Truth, reports: list[Report], provinces: tuple[str, ...],
                           dlq_from: dict[TopicPartition, int], *, cap_s: float = 240.0, quiet_s: float = 25.0,
                           still_s: float = 3.0) -> Truth:
    """Poll until the platform has settled, then check. Settled: nothing waits in an outbox or a send, and
    no count has moved for `still_s` seconds, and the check passes; or no count has moved for `quiet_s`
    seconds (then the check's findings stand); or `cap_s` has passed. Timing is never asserted."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as http:
        checker = Checker(stack, http)
        last, changed_at = None, time.monotonic()
        checked_at: dict | None = None
        while True:
            try:
                now = await fingerprint(stack, provinces, http)
            except (OSError, asyncpg.PostgresError, httpx.HTTPError):
                now = None  # a service or the database is still coming back
            if now != last:
                last, changed_at = now, time.monotonic()
            still = time.monotonic() - changed_at
            idle = now is not None and now["in_flight"] == 0 and now["unpublished"] == 0
            timed_out = time.monotonic() - started > cap_s
            if timed_out or (now is not None and ((idle and still >= still_s and now != checked_at)
                                                  or still >= quiet_s)):
                began = time.monotonic()
                truth = await checker.check(truth, reports, provinces, dlq_from)
                truth.check_s = time.monotonic() - began
                checked_at = now
                if truth.ok or still >= quiet_s or timed_out:
                    truth.settle_s = time.monotonic() - started
                    if not truth.ok:
                        truth.notes.append(f"last counts {now}")
                    return truth
            await asyncio.sleep(1.0)
