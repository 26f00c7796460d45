"""A declined referral goes on to the next candidate: the case's newest facts are matched again with the
unit that declined, and every unit the case already reaches, left out. Only the rules (and needs) that
had chosen the declined unit count, and only a unit at its level or above: the others still have theirs.
A unit no rule chose (an escalation went to it) is replaced by the next unit up its ladder."""
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select

from runtime.logging import get_logger
from runtime.uow import UnitOfWork
from schemas.events.referrals import ReferralCause
from services.referral.deadlines.ladder import ladder
from services.referral.deadlines.scanner import LADDER_RULE, refer_up
from services.referral.directory.model import LEVEL_ORDER, DirectoryIndex, Unit
from services.referral.matching.engine import Match, Outcome, StepKind, explain
from services.referral.models import referrals
from services.referral.referrals.handlers import Referrer, create_referral, latest_facts

log = get_logger(__name__)


async def reroute(uow: UnitOfWork, referrer: Referrer, declined: Mapping[str, Any], now: datetime) -> list[UUID]:
    """Refer the case of the `declined` referral (its row, with decline_reason) on; the new referrals' ids
    (none: nobody is left)."""
    case = await latest_facts(uow, declined["case_id"])
    directory = await referrer.directory.current(uow.session)
    unit = directory.by_id.get(declined["agency_unit_id"])
    made: list[UUID] = []
    if case is not None and unit is not None:
        reached = (await uow.session.scalars(
            select(referrals.c.agency_unit_id).where(referrals.c.case_id == declined["case_id"]))).all()
        why = f"re-routed: {unit.name} declined ({declined['decline_reason']}); "
        if _chosen_by_ladder(unit, declined["trace"]):
            made = await _up_the_ladder(uow, referrer, declined, unit, directory, set(reached), now, why)
        else:
            exclude = frozenset(directory.by_id[i].code for i in reached if i in directory.by_id) | {unit.code}
            outcome = explain(case, directory, referrer.rules, now, exclude=exclude)
            for m in next_candidates(unit, declined["trace"], outcome):
                new_id = await create_referral(uow, referrer, case, m, now, cause=ReferralCause.reroute,
                                               previous=declined["id"], why=why)
                if new_id is not None:
                    made.append(new_id)
    if not made:
        log.warning("referral_reroute_found_nobody", referral_id=str(declined["id"]),
                    case_number=declined["case_number"], facts_known=case is not None)
    return made


def _chosen_by_ladder(unit: Unit, trace: list[dict]) -> bool:
    return any(s.get("rule") == LADDER_RULE and s.get("unit") == unit.code for s in trace
               if s.get("kind") == StepKind.chosen)


async def _up_the_ladder(uow: UnitOfWork, referrer: Referrer, declined: Mapping[str, Any], unit: Unit,
                         directory: DirectoryIndex, reached: set[UUID], now: datetime, why: str) -> list[UUID]:
    for target in ladder(unit, declined["province_code"], directory):
        if target.id not in reached:
            new_id = await refer_up(uow, referrer, declined, target, now, cause=ReferralCause.reroute,
                                    reason=f"{why}next up: {target.name}")
            if new_id is not None:
                return [new_id]
    return []


def next_candidates(declined: Unit, declined_trace: list[dict], outcome: Outcome) -> list[Match]:
    """The matches that replace `declined`: chosen for a rule (and need) that had chosen it, at its level or
    above, each narrowed to those rules."""
    served = {(s.get("rule"), s.get("need")) for s in declined_trace
              if s.get("kind") == StepKind.chosen and s.get("unit") == declined.code}
    floor = LEVEL_ORDER.index(declined.level)
    found = []
    for m in outcome.matches:
        rules = tuple(dict.fromkeys(rule for rule, need in _served_by(m) if (rule, need) in served))
        if rules and LEVEL_ORDER.index(m.unit.level) >= floor:
            found.append(replace(m, rules=rules, reasons={r: m.reasons[r] for r in rules}))
    return found


def _served_by(m: Match) -> list[tuple[str, str | None]]:
    return [(s.rule, s.need and str(s.need)) for s in m.trace if s.kind is StepKind.chosen and s.unit == m.code]
