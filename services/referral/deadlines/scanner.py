"""Durable deadline timers: each referral row carries its next step (remind, then escalate) and when
it is due. A scan locks the due rows with FOR UPDATE SKIP LOCKED, fires their steps and moves the
timers on in the same transaction, so a step fires exactly once however many replicas scan, and a
restart loses nothing: the timers are rows, not tasks.
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import Text, cast, func, select, update

from runtime.db import log_failed_tick
from runtime.logging import get_logger
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseFacts
from schemas.events.common import Urgency
from schemas.events.referrals import ReferralCause, ReferralEscalated, ReferralReminder
from services.referral.deadlines.ladder import ladder
from services.referral.directory.model import DirectoryIndex, Unit, UnitKind
from services.referral.matching.engine import Match, Step, StepKind
from services.referral.models import referrals
from services.referral.referrals.handlers import Referrer, contacts_of, create_referral, language_of, latest_facts
from services.referral.referrals.links import link_expiry

log = get_logger(__name__)
REMIND, ESCALATE = "remind", "escalate"
LADDER_RULE = "escalation"  # the trace's rule for a unit chosen by climbing the ladder, not by the rules
LAW_ENFORCEMENT = {UnitKind.police_commune, UnitKind.police_province, UnitKind.police_national,
                   UnitKind.border_guard_province, UnitKind.border_post, UnitKind.coast_guard_region}
# Why an escalation referred no new unit.
TOP_OF_LADDER, UNIT_REMOVED, ABOVE_HAS_CASE = "top-of-ladder", "unit-removed", "above-already-referred"

# Counted once a scan's transaction has committed, so a rolled-back scan (fired again later) counts once.
# Labels are bounded enums, never a case or a unit. Every series exists from the start at 0: a rate over
# a counter's first appearance sees no increase, and the first emergency breach is the one that matters.
BREACHES = Counter("referral_deadline_breaches_total",
                   "Acknowledgement deadlines missed, by the step fired (remind, then escalate) and urgency",
                   ["step", "urgency"])
UNPLACED = Counter("referral_escalations_unplaced_total",
                   "Escalations that referred no new unit (top of the ladder, unit removed, units above have the case)",
                   ["urgency", "reason"])
SCANS = Counter("referral_deadline_scans_total", "Deadline scans, by outcome (ok, failed)", ["outcome"])
for _urgency in Urgency:
    for _step in (REMIND, ESCALATE):
        BREACHES.labels(_step, _urgency.value)
    for _reason in (TOP_OF_LADDER, UNIT_REMOVED, ABOVE_HAS_CASE):
        UNPLACED.labels(_urgency.value, _reason)
for _outcome in ("ok", "failed"):
    SCANS.labels(_outcome)


CASE_LOCKS = 0x7265_6631  # advisory lock class of "a scanner holds this case" (two-int keys: own space)


def _case_is_ours():
    """A case's overdue referrals are fired by one scanner at a time. Escalating two of them (commune
    police and committee, both to the province police) in two scanners would insert into the same
    (case, unit) key from two transactions and deadlock; with the case held, the other scanner skips it."""
    return func.pg_try_advisory_xact_lock(CASE_LOCKS, func.hashtext(cast(referrals.c.case_id, Text)))


@dataclass
class Fired:
    reminders: int = 0
    escalations: int = 0
    breaches: list[tuple[str, str]] = field(default_factory=list)  # (step, urgency) per fired step
    unplaced: list[tuple[str, str]] = field(default_factory=list)  # (urgency, reason) per dead-end escalation

    @property
    def total(self) -> int:
        return self.reminders + self.escalations


def escalate_after(referrer: Referrer, urgency: Urgency) -> timedelta:
    s = referrer.settings
    return timedelta(minutes={Urgency.emergency: s.escalate_minutes_emergency, Urgency.high: s.escalate_minutes_high,
                              Urgency.normal: s.escalate_minutes_normal}[urgency])


async def fire_due(uow: UnitOfWork, referrer: Referrer, now: datetime, limit: int = 100) -> Fired:
    """Fire the steps due by `now` (at most `limit`), in one transaction, and commit."""
    due = (await uow.session.execute(
        select(referrals).where(referrals.c.due_at <= now, referrals.c.due_step.is_not(None), _case_is_ours())
        .order_by(referrals.c.due_at, referrals.c.case_id).limit(limit).with_for_update(skip_locked=True)
    )).mappings().all()
    fired = Fired()
    if not due:
        return fired
    directory = await referrer.directory.current(uow.session)
    reminded: dict[Urgency, list] = defaultdict(list)
    for row in due:
        unit = directory.by_id.get(row["agency_unit_id"])
        if row["due_step"] == REMIND and unit is not None:
            reminded[Urgency(row["urgency"])].append((row, unit))
        else:  # escalate (or remind a unit since removed from the directory: nobody to remind)
            urgency = Urgency(row["urgency"]).value
            if dead_end := await _escalate(uow, referrer, row, unit, directory, now):
                fired.unplaced.append((urgency, dead_end))
            fired.escalations += 1
            fired.breaches.append((ESCALATE, urgency))
    for urgency, rows in reminded.items():
        await _remind(uow, referrer, urgency, rows, now)
        fired.reminders += len(rows)
        fired.breaches += [(REMIND, urgency.value)] * len(rows)
    await uow.commit()
    for step, urgency in fired.breaches:
        BREACHES.labels(step, urgency).inc()
    for urgency, reason in fired.unplaced:
        UNPLACED.labels(urgency, reason).inc()
    return fired


async def _remind(uow: UnitOfWork, referrer: Referrer, urgency: Urgency, rows: list, now: datetime) -> None:
    """Remind the units of a batch's referrals of one urgency: one UPDATE moves all their timers on."""
    escalate_at = now + escalate_after(referrer, urgency)
    links = referrer.links
    await uow.session.execute(update(referrals).where(referrals.c.id.in_([row["id"] for row, _ in rows])).values(
        due_step=ESCALATE, due_at=escalate_at, reminded_at=now, updated_at=now))
    for row, unit in rows:
        uow.emit(ReferralReminder(
            referral_id=row["id"], case_id=row["case_id"], case_number=row["case_number"], agency_unit_id=unit.id,
            agency_unit_name=unit.name, urgency=urgency, acknowledge_by=row["acknowledge_by"],
            escalate_at=escalate_at, contacts=contacts_of(unit), language=language_of(unit),
            ack_url=links.ack_link(row["id"], link_expiry(escalate_at)) if links else None,
        ), key=str(row["case_id"]), subject=row["case_number"])


async def _escalate(uow: UnitOfWork, referrer: Referrer, row, unit: Unit | None, directory: DirectoryIndex,
                    now: datetime) -> str | None:
    """One level up, skipping units the case already reaches; the overdue referral stays open. Returns why
    no new unit was referred (TOP_OF_LADDER, UNIT_REMOVED, ABOVE_HAS_CASE), or None when one was."""
    await uow.session.execute(update(referrals).where(referrals.c.id == row["id"]).values(
        due_step=None, due_at=None, escalated_at=now, updated_at=now))
    target, new_id = None, None
    above = ladder(unit, row["province_code"], directory) if unit else []
    for candidate in above:
        reason = f"escalated: {unit.name} did not acknowledge by {row['acknowledge_by']:%Y-%m-%d %H:%M} UTC"
        new_id = await refer_up(uow, referrer, row, candidate, now, cause=ReferralCause.escalation, reason=reason)
        if new_id is not None:
            target = candidate
            break
    uow.emit(ReferralEscalated(
        referral_id=row["id"], case_id=row["case_id"], case_number=row["case_number"],
        agency_unit_id=row["agency_unit_id"], escalated_referral_id=new_id,
        to_level=target.level if target else None, escalated_at=now,
    ), key=str(row["case_id"]), subject=row["case_number"])
    if target is None:  # the top, or every unit above already has the case
        log.warning("referral_escalation_no_new_unit", referral_id=str(row["id"]), case_number=row["case_number"],
                    reason="every unit above already has the case" if above else "top of the ladder")
        return ABOVE_HAS_CASE if above else TOP_OF_LADDER if unit else UNIT_REMOVED
    return None


async def refer_up(uow: UnitOfWork, referrer: Referrer, row, target: Unit, now: datetime, *,
                   cause: ReferralCause, reason: str):
    """A referral of `row`'s case to `target`, a unit up its ladder (an escalation, or a re-route of one
    that was declined), or None if the case already has one there."""
    # Identity goes up the police chain only as far as it was allowed; a coordination centre gets none.
    shared = bool(row["identity_shared"]) and target.kind in LAW_ENFORCEMENT
    chosen = Match(unit=target, rules=(), reasons={}, needs=(), identity_shared=shared,
                   trace=(Step(rule=LADDER_RULE, kind=StepKind.chosen, text=reason, unit=target.code),))
    # The case's newest facts (commune, category) when referral keeps them; the row's own otherwise.
    case = await latest_facts(uow, row["case_id"]) or CaseFacts(
        case_id=row["case_id"], case_number=row["case_number"], province_code=row["province_code"],
        urgency=row["urgency"])
    return await create_referral(uow, referrer, case, chosen, now, cause=cause, previous=row["id"], why=reason)


def deadline_worker(uows: Callable[[], UnitOfWork], referrer: Referrer,
                    clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
    """The service's loop: scan now, again at once while batches come back full, else sleep."""
    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with uows() as uow:
                    fired = await fire_due(uow, referrer, clock())
                SCANS.labels("ok").inc()
            except Exception as exc:  # a failed scan is retried at the next tick; its transaction rolled back
                log_failed_tick(log, "deadline_scan_failed", exc)
                SCANS.labels("failed").inc()
                fired = Fired()
            if fired.total:
                log.info("deadlines_fired", reminders=fired.reminders, escalations=fired.escalations)
                continue
            try:
                await asyncio.wait_for(stop.wait(), referrer.settings.deadline_scan_s)
            except TimeoutError:
                pass

    return run
