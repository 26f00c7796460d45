"""Durable deadline timers under a controllable clock, on a database of their own (migrated and
seeded like referral's, with no service scanning it): a missed acknowledgement is reminded once,
then escalated one level (commune → province → regional centre → national) once, however many
scanners run."""
import asyncio
import sys
from datetime import timedelta

from sqlalchemy import func, select, update

from schemas.events.cases import CaseFacts
from schemas.events.referrals import DeclineReason, ReferralStatus
from services.referral.deadlines.scanner import fire_due
from services.referral.models import agency_units, outbox, referrals
from services.referral.referrals import service
from services.referral.referrals.scope import AgencyScope
from tests.referral.own_database import T0, report, uow


async def units_of(db, case: CaseFacts) -> dict[str, dict]:
    """The case's referrals by unit code, with cause and timer."""
    async with db[0].connect() as conn:
        rows = (await conn.execute(
            select(agency_units.c.code, referrals.c.id, referrals.c.cause, referrals.c.due_step, referrals.c.due_at,
                   referrals.c.previous_referral_id)
            .join(agency_units, agency_units.c.id == referrals.c.agency_unit_id)
            .where(referrals.c.case_id == case.case_id))).mappings().all()
    return {r["code"]: dict(r) for r in rows}


async def events(db, case: CaseFacts, kind: str) -> list[dict]:
    async with db[0].connect() as conn:
        return [r.payload for r in (await conn.execute(
            select(outbox.c.payload).where(outbox.c.key == str(case.case_id), outbox.c.type.endswith(f".{kind}.v1"))
            .order_by(outbox.c.seq)))]


async def scan(db, referrer, now) -> int:
    total = 0
    while True:
        async with uow(db) as u:
            fired = await fire_due(u, referrer, now)
        total += fired.total
        if not fired.total:
            return total


async def test_a_missed_deadline_reminds_once_then_climbs_the_ladder(db, referrer):
    case = await report(db, referrer, province_code="56", commune_code=await a_commune("56"))
    first = await units_of(db, case)
    commune = next(c for c in first if c.startswith("police-commune-"))
    assert set(first) == {commune, commune.replace("police-commune", "peoples-committee")}
    due = first[commune]["due_at"]
    assert due == T0 + timedelta(minutes=referrer.settings.ack_minutes_normal)

    assert await scan(db, referrer, due - timedelta(seconds=1)) == 0  # not yet
    assert await scan(db, referrer, due + timedelta(seconds=1)) == 2  # both reminded
    assert await scan(db, referrer, due + timedelta(seconds=2)) == 0  # exactly once
    reminders = await events(db, case, "reminder")
    assert sorted(r["agency_unit_name"].split(" of ")[0] for r in reminders) == ["Commune Police", "People's Committee"]
    assert all(r["contacts"] for r in reminders)

    later = due + timedelta(seconds=1) + timedelta(minutes=referrer.settings.escalate_minutes_normal)
    assert await scan(db, referrer, later) == 2
    now = await units_of(db, case)
    # The commune police climbs to the province police; the committee, whose province police the case
    # now reaches, to the regional centre. The overdue referrals stay, with no timer.
    assert now["police-province-56"]["previous_referral_id"] == first[commune]["id"]
    assert now["hotline-centre-central"]["cause"] == "escalation"
    assert now[commune]["due_step"] is None and now[commune]["due_at"] is None
    escalated = await events(db, case, "escalated")
    assert {e["to_level"] for e in escalated} == {"province", "region"}
    created = [e for e in await events(db, case, "created") if e["cause"] == "escalation"]
    assert {e["agency_unit_name"] for e in created} == {"Provincial Police of Khánh Hòa",
                                                         "Hotline 111 regional operation centre, Đà Nẵng"}

    # Nobody acknowledges: up to the national centre, and then there is nowhere higher.
    far = later + timedelta(days=10)
    for _ in range(6):
        await scan(db, referrer, far)
        far += timedelta(days=10)
    final = await units_of(db, case)
    assert "hotline-national-centre" in final
    tops = [e for e in await events(db, case, "escalated") if e["escalated_referral_id"] is None]
    assert tops, "the national level escalates to no one, and says so"
    assert all(r["due_step"] is None for r in final.values())  # every timer has run out, none loops


async def test_an_acknowledged_referral_is_never_reminded(db, referrer):
    case = await report(db, referrer, province_code="56", commune_code=await a_commune("56", 1))
    async with db[0].begin() as conn:  # what acknowledging does to the timer
        await conn.execute(update(referrals).where(referrals.c.case_id == case.case_id)
                           .values(status="acknowledged", due_step=None, due_at=None))
    await scan(db, referrer, T0 + timedelta(days=30))
    assert await events(db, case, "reminder") == [] and await events(db, case, "escalated") == []


async def test_two_scanners_never_fire_a_step_twice(db, referrer):
    cases = [await report(db, referrer, province_code="24") for _ in range(30)]  # province police (+ Border Guard)
    ids = [c.case_id for c in cases]
    async with db[0].connect() as conn:
        expected = await conn.scalar(select(func.count()).where(referrals.c.case_id.in_(ids)))
    when = T0 + timedelta(days=2)

    async def scanner() -> int:
        return await scan(db, referrer, when)

    fired = await asyncio.gather(scanner(), scanner(), scanner())
    reminders = [r for c in cases for r in await events(db, c, "reminder")]
    assert len(reminders) == expected and len({r["referral_id"] for r in reminders}) == expected
    assert sum(fired) >= expected  # other tests' referrals may be due too; none of ours twice

    # Escalations too: a case's referrals climb to the same units, so two scanners working on one case
    # would deadlock on the (case, unit) key. Each case is held by one scanner; nothing fails or doubles.
    when += timedelta(minutes=referrer.settings.escalate_minutes_normal, seconds=1)
    await asyncio.gather(scanner(), scanner(), scanner())
    escalated = [e for c in cases for e in await events(db, c, "escalated")]
    assert len(escalated) == expected and len({e["referral_id"] for e in escalated}) == expected


async def a_commune(province: str, index: int = 0) -> str:
    from schemas.geography import communes
    return sorted(code for code, (_name, p) in communes().items() if p == province)[index]


async def test_two_referral_processes_never_fire_a_step_twice(db, referrer):
    cases = [await report(db, referrer, province_code="33") for _ in range(20)]
    ids = [c.case_id for c in cases]
    async with db[0].connect() as conn:
        expected = await conn.scalar(select(func.count()).where(referrals.c.case_id.in_(ids)))
    url = db[1].database_url
    when = (T0 + timedelta(days=3)).isoformat()
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.referral.scan_process", url,
                                                  db[1].kafka_bootstrap_servers, when) for _ in range(2)]
    assert [await p.wait() for p in procs] == [0, 0]
    reminders = [r for c in cases for r in await events(db, c, "reminder")]
    assert len(reminders) == expected and len({r["referral_id"] for r in reminders}) == expected


async def test_a_declined_escalation_goes_on_up_the_ladder(db, referrer):
    case = await report(db, referrer, province_code="56", commune_code=await a_commune("56", 2))
    due = next(iter((await units_of(db, case)).values()))["due_at"]
    await scan(db, referrer, due + timedelta(seconds=1))
    await scan(db, referrer, due + timedelta(days=1))  # commune police → province police, committee → centre
    escalated = await units_of(db, case)
    province = escalated["police-province-56"]
    assert province["cause"] == "escalation" and "hotline-centre-central" in escalated

    scope = AgencyScope("province-duty-officer", frozenset({(await unit_id(db, "police-province-56"))}))
    async with uow(db) as u:
        await service.transition(u, scope, province["id"], 1, ReferralStatus.acknowledged)
    async with uow(db) as u:
        _, made = await service.decline(u, referrer, scope, province["id"], 2, DeclineReason.not_competent)
    assert made == 1
    now = await units_of(db, case)
    national = now["hotline-national-centre"]  # the regional centre has the case already: one more up
    assert (national["cause"], national["previous_referral_id"]) == ("reroute", province["id"])
    (alert,) = [e for e in await events(db, case, "created") if e["referral_id"] == str(national["id"])]
    assert alert["match_reason"].startswith("re-routed: Provincial Police of Khánh Hòa declined (not_competent)")


async def unit_id(db, code: str):
    async with db[0].connect() as conn:
        return (await conn.execute(select(agency_units.c.id).where(agency_units.c.code == code))).scalar_one()
