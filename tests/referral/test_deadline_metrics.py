"""The deadline scanner's counters agree with the events it emits: one breach per reminder and per
escalation, by urgency, one dead end per escalation that referred no new unit; counted only once the
scan commits. referral_deadline_scans_total counts each scan by outcome."""
import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import select

from schemas.events.cases import CaseFacts
from services.referral.deadlines.scanner import BREACHES, SCANS, UNPLACED, deadline_worker, fire_due
from services.referral.models import outbox
from services.referral.referrals.handlers import refer
from tests.referral.own_database import T0, uow

URGENCIES = ("emergency", "high", "normal")
REASONS = ("top-of-ladder", "unit-removed", "above-already-referred")


def value(counter, *labels: str) -> float:
    return counter.labels(*labels)._value.get()  # noqa: SLF001 - the counter's own value


def counts() -> dict:
    return {**{("breach", step, u): value(BREACHES, step, u) for step in ("remind", "escalate") for u in URGENCIES},
            **{("unplaced", u, r): value(UNPLACED, u, r) for u in URGENCIES for r in REASONS}}


def delta(before: dict) -> dict:
    return {k: v - before[k] for k, v in counts().items() if v != before[k]}


async def emergency(db, referrer) -> CaseFacts:
    case = CaseFacts(case_id=uuid.uuid4(), case_number=f"111-2026-{uuid.uuid4().int % 10**6:06d}",
                     urgency="emergency", province_code="24")
    async with uow(db) as u:
        await refer(u, referrer, case, T0)
        await u.commit()
    return case


async def emitted(db, case: CaseFacts, kind: str) -> list[dict]:
    async with db[0].connect() as conn:
        return [p for p in (await conn.execute(select(outbox.c.payload).where(
            outbox.c.key == str(case.case_id), outbox.c.type.endswith(f".{kind}.v1")))).scalars()]


async def scan_all(db, referrer, now) -> None:
    while (await fire_due_in(db, referrer, now)).total:
        pass


async def fire_due_in(db, referrer, now):
    async with uow(db) as u:
        return await fire_due(u, referrer, now)


async def test_breaches_and_dead_ends_match_the_events_and_count_after_commit(db, referrer):
    case = await emergency(db, referrer)
    before = counts()
    due = T0 + timedelta(minutes=referrer.settings.ack_minutes_emergency, seconds=1)

    async with uow(db) as u:  # a scan that fails at commit fired nothing, and counts nothing
        async def broken():
            raise ConnectionError("the database went away")
        u.commit = broken
        try:
            await fire_due(u, referrer, due)
        except ConnectionError:
            pass
    assert delta(before) == {}

    await scan_all(db, referrer, due)
    reminders = await emitted(db, case, "reminder")
    assert reminders and delta(before) == {("breach", "remind", "emergency"): len(reminders)}
    await scan_all(db, referrer, due)  # exactly once
    assert delta(before) == {("breach", "remind", "emergency"): len(reminders)}

    # Nobody acknowledges: up the ladder to the national level, and then nowhere.
    when = due
    for _ in range(8):
        when += timedelta(days=1)
        await scan_all(db, referrer, when)
    escalated = await emitted(db, case, "escalated")
    dead_ends = [e for e in escalated if e["escalated_referral_id"] is None]
    change = delta(before)
    assert change.pop(("breach", "remind", "emergency")) == len(await emitted(db, case, "reminder"))
    assert change.pop(("breach", "escalate", "emergency")) == len(escalated)
    assert {k[0] for k in change} == {"unplaced"} and {k[1] for k in change} == {"emergency"}
    assert sum(change.values()) == len(dead_ends)
    assert change.get(("unplaced", "emergency", "top-of-ladder"), 0) >= 1, "the national level escalates to no one"


async def test_each_scan_counts_by_outcome(db, referrer):
    ok, failed = value(SCANS, "ok"), value(SCANS, "failed")
    stop = asyncio.Event()

    def once():  # the worker's loop runs one scan, then finds itself stopped
        stop.set()
        return uow(db)

    def down():
        stop.set()
        raise ConnectionError("the database went away")

    await deadline_worker(once, referrer, clock=lambda: T0)(stop)
    stop.clear()
    await deadline_worker(down, referrer, clock=lambda: T0)(stop)
    assert (value(SCANS, "ok"), value(SCANS, "failed")) == (ok + 1, failed + 1)
