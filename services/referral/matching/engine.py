"""Who gets a case, and why. A pure function of the case facts, the directory, the rules and the time:
no I/O, so the same inputs always give the same referrals and the same explanation."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from schemas.vocab import Need
from services.referral.directory.model import DirectoryIndex, Level, Service, Unit, UnitKind, UnitStatus
from services.referral.matching.conditions import CaseView, Geography, Verdict, check
from services.referral.matching.policy import identity_verdict
from services.referral.matching.rules import KindRoute, NeedsRoute, Rule, RuleSet, Scope, ServiceRoute

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # opening hours are published in local time
CONSENT = "consent"  # the `rule` of consent steps


class StepKind(StrEnum):
    condition = "condition"  # a rule's `when:` (or which needs a needs route serves)
    chosen = "chosen"  # a candidate became a referral
    skipped = "skipped"  # a candidate was passed over; `skip` says why
    fallback = "fallback"  # nothing eligible at one place: the route tries its next one
    unmatched = "unmatched"  # the route ran out of places without a unit
    consent = "consent"  # what the referral carries


class SkipReason(StrEnum):
    inactive = "inactive"
    temporarily_closed = "temporarily_closed"
    closed_now = "closed_now"  # emergency, and neither open now nor reachable 24/7
    another_chosen = "another_chosen"  # eligible, but an earlier unit at the same place was taken
    excluded = "excluded"  # the caller left it out: it declined the case, or already has it


@dataclass(frozen=True)
class Step:
    rule: str
    kind: StepKind
    text: str
    ok: bool | None = None  # for conditions and consent
    unit: str | None = None  # the candidate's code
    skip: SkipReason | None = None
    need: Need | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"[{self.rule}] {self.text}"


@dataclass(frozen=True)
class Match:
    unit: Unit
    rules: tuple[str, ...]  # ids of the rules that chose it, in rule order
    reasons: dict[str, str]  # rule id → why, in words
    needs: tuple[Need, ...]  # needs this unit was chosen for, if any
    identity_shared: bool
    trace: tuple[Step, ...]  # the steps of the rules that chose it, then the consent decision

    @property
    def code(self) -> str:
        return self.unit.code


@dataclass(frozen=True)
class Outcome:
    matches: tuple[Match, ...]
    trace: tuple[Step, ...]  # every step of every rule, including conditions that were false
    unmatched: tuple[str, ...]  # rules whose condition held but that found no unit (per need: "rule:need")


def match(facts: Any, directory: DirectoryIndex, rules: Any, now: datetime,
          geography: Geography | None = None, exclude: frozenset[str] = frozenset()) -> list[Match]:
    """One Match per chosen unit, in the order rules first chose them. See `explain` for the arguments."""
    return list(explain(facts, directory, rules, now, geography, exclude).matches)


def explain(facts: Any, directory: DirectoryIndex, rules: Any, now: datetime,
            geography: Geography | None = None, exclude: frozenset[str] = frozenset()) -> Outcome:
    """`facts`: a CaseFacts payload (CaseReported, CaseUpdated) or a mapping of one. `rules`: a RuleSet or a
    RuleBook (its current rules). `now`: timezone-aware. `geography` defaults to the directory. `exclude`:
    unit codes never chosen (skipped as `excluded`), so each rule falls through to its next candidate."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    ruleset: RuleSet = getattr(rules, "current", rules)
    ctx = _Context(CaseView.of(facts), directory, geography or directory, now.astimezone(LOCAL_TZ), exclude)
    trace: list[Step] = []
    chosen: dict[str, _Chosen] = {}
    unmatched: list[str] = []
    for rule in ruleset.rules:
        verdict = check(rule.when, ctx.case, ctx.geo)
        head = Step(rule.id, StepKind.condition, f"when {verdict.text}", ok=verdict.ok, facts=verdict.facts)
        trace.append(head)
        if not verdict.ok:
            continue
        for found in _route(rule, ctx, trace):
            if found.unit is None:
                unmatched.append(f"{rule.id}:{found.need}" if found.need else rule.id)
                continue
            entry = chosen.setdefault(found.unit.code, _Chosen(found.unit))
            entry.add(rule, head, found)
    matches = []
    for entry in chosen.values():
        consent = identity_verdict(entry.unit, ctx.case, ruleset.consent, ctx.geo)
        step = Step(CONSENT, StepKind.consent, consent.text, ok=consent.ok, unit=entry.unit.code, facts=consent.facts)
        trace.append(step)
        matches.append(entry.freeze(consent.ok, step))
    return Outcome(tuple(matches), tuple(trace), tuple(unmatched))


# ---- internals ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Context:
    case: CaseView
    directory: DirectoryIndex
    geo: Geography
    local_now: datetime
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Found:
    unit: Unit | None
    reason: str
    steps: tuple[Step, ...]
    need: Need | None = None


@dataclass
class _Chosen:
    unit: Unit
    rules: dict[str, list[str]] = field(default_factory=dict)
    needs: list[Need] = field(default_factory=list)
    trace: list[Step] = field(default_factory=list)

    def add(self, rule: Rule, head: Step, found: _Found) -> None:
        if rule.id not in self.rules:
            self.rules[rule.id] = []
            self.trace.append(head)
        self.rules[rule.id].append(found.reason)
        self.trace.extend(found.steps)
        if found.need is not None:
            self.needs.append(found.need)

    def freeze(self, identity_shared: bool, consent: Step) -> Match:
        return Match(self.unit, tuple(self.rules), {r: "; ".join(v) for r, v in self.rules.items()},
                     tuple(self.needs), identity_shared, (*self.trace, consent))


@dataclass(frozen=True)
class _Place:
    """One place a route looks: what to look for, where, and the units found there (None: cannot look)."""

    what: str  # "police_commune", "a unit offering medical"
    where: str  # "commune 00070"
    units: list[Unit] | None


def _route(rule: Rule, ctx: _Context, trace: list[Step]) -> list[_Found]:
    route = rule.route
    if isinstance(route, KindRoute):
        steps = [route, *route.fallback]
        return [_walk(rule, ctx, trace, [_kind_place(s.kind, s.at, ctx) for s in steps])]
    if isinstance(route, ServiceRoute):
        return [_walk(rule, ctx, trace, [_service_place(route.service, lv, ctx) for lv in route.levels])]
    return _route_needs(rule, route, ctx, trace)


def _route_needs(rule: Rule, route: NeedsRoute, ctx: _Context, trace: list[Step]) -> list[_Found]:
    wanted = [n for n in route.each_need if n in ctx.case.needs]
    text = (f"needs of the victims: {', '.join(ctx.case.needs) or 'none'}; routed here: {', '.join(wanted) or 'none'}"
            f" (this rule serves {', '.join(route.each_need)})")
    trace.append(Step(rule.id, StepKind.condition, text, ok=bool(wanted), facts={"needs": list(ctx.case.needs)}))
    return [_walk(rule, ctx, trace, [_service_place(Service(n.value), lv, ctx) for lv in route.levels], need=n)
            for n in wanted]


def _walk(rule: Rule, ctx: _Context, trace: list[Step], places: list[_Place], need: Need | None = None) -> _Found:
    """Try each place in order; take the first eligible unit. Every candidate and every fallback is traced."""
    steps: list[Step] = []
    misses: list[str] = []
    for i, place in enumerate(places):
        label = f"{place.what} for {place.where}"
        if place.units is None:
            miss = f"cannot look for {label}"
        else:
            unit = _pick(rule, ctx, place, steps, need)
            if unit is not None:
                how = label if not misses else f"{label}, after falling back from: {'; '.join(misses)}"
                reason = f"{rule.reason} ({f'need {need}: ' if need else ''}{how})"
                trace.extend(steps)
                return _Found(unit, reason, tuple(steps), need)
            miss = f"no eligible {label}" if place.units else f"no {label} in the directory"
        misses.append(miss)
        if i + 1 < len(places):
            nxt = places[i + 1]
            steps.append(Step(rule.id, StepKind.fallback, f"{miss} → falling back to {nxt.what} for {nxt.where}",
                              need=need))
        else:
            steps.append(Step(rule.id, StepKind.unmatched, f"{miss}; no unit chosen"
                              f"{f' for need {need}' if need else ''}", need=need))
    trace.extend(steps)
    return _Found(None, "", tuple(steps), need)


def _pick(rule: Rule, ctx: _Context, place: _Place, steps: list[Step], need: Need | None) -> Unit | None:
    picked: Unit | None = None
    for unit in place.units or ():
        skip, why = _ineligible(unit, rule, ctx)
        if skip is None and picked is not None:
            skip, why = SkipReason.another_chosen, f"eligible, but {picked.code} comes first in code order"
        if skip is not None:
            steps.append(Step(rule.id, StepKind.skipped, f"skipped {unit.code} ({place.what} for {place.where}): {why}",
                              unit=unit.code, skip=skip, need=need))
            continue
        picked = unit
        steps.append(Step(rule.id, StepKind.chosen, f"chose {unit.code} ({unit.name}): {place.what} for {place.where}"
                          f"{_open_note(unit, rule, ctx)}", unit=unit.code, need=need))
    return picked


def _ineligible(unit: Unit, rule: Rule, ctx: _Context) -> tuple[SkipReason | None, str]:
    if unit.code in ctx.exclude:
        return SkipReason.excluded, "excluded: it declined this case or already has it"
    if unit.status == UnitStatus.inactive:
        return SkipReason.inactive, "inactive in the directory"
    if unit.status == UnitStatus.temporarily_closed:
        return SkipReason.temporarily_closed, "temporarily closed"
    if rule.emergency_requires_open_now and ctx.case.emergency and not unit.open_at(ctx.local_now):
        hours = "closed now" if unit.opening_hours else "no published hours"
        return SkipReason.closed_now, (f"emergency: {hours} ({_local(ctx)}) and no 24/7 duty contact")
    return None, ""


def _open_note(unit: Unit, rule: Rule, ctx: _Context) -> str:
    if not (rule.emergency_requires_open_now and ctx.case.emergency):
        return ""
    if unit.has_duty_contact:
        return "; emergency: reachable by a 24/7 duty contact"
    return f"; emergency: open now ({_local(ctx)})"


def _local(ctx: _Context) -> str:
    return ctx.local_now.strftime("%a %H:%M Asia/Ho_Chi_Minh")


def _area(scope: Scope, ctx: _Context) -> tuple[Level, str, str] | str:
    """(level, area code, words) for a scope, or why it cannot be looked up for this case."""
    case = ctx.case
    match scope:
        case Scope.commune:
            if case.commune_code is None:
                return "the case's commune (commune unknown)"
            return Level.commune, case.commune_code, f"commune {case.commune_code}"
        case Scope.province:
            return Level.province, case.province_code, f"province {case.province_code}"
        case Scope.region:
            region = ctx.geo.region_of(case.province_code)
            if region is None:
                return f"the region of province {case.province_code} (region unknown)"
            return Level.region, region, f"region {region} (province {case.province_code})"
        case Scope.nation:
            return Level.national, "", "the nation"
        case Scope.abroad_country:
            if case.abroad_country is None:
                return "the country abroad (no abroad_country in the facts)"
            return Level.international, case.abroad_country, f"country {case.abroad_country}"
    raise AssertionError(scope)  # covering_province and destination_border are handled by _kind_place


def _kind_place(kind: UnitKind, scope: Scope, ctx: _Context) -> _Place:
    if scope is Scope.covering_province:
        units = [u for u in ctx.geo.units_covering(ctx.case.province_code) if u.kind == kind]
        return _Place(kind.value, f"the area covering province {ctx.case.province_code}", units)
    if scope is Scope.destination_border:
        return _border_place(kind, ctx)
    area = _area(scope, ctx)
    if isinstance(area, str):
        return _Place(kind.value, area, None)
    level, code, words = area
    return _Place(kind.value, words, ctx.directory.units_of_kind(kind, level, code))


def _border_place(kind: UnitKind, ctx: _Context) -> _Place:
    """Units in the provinces on the border the person is being moved across: those of the case's own
    hotline region first (nearest), then the rest, each in province code order."""
    country = ctx.case.destination_country
    if country is None:
        return _Place(kind.value, "the border crossed (no destination_country in the facts)", None)
    region = ctx.geo.region_of(ctx.case.province_code)
    provinces = sorted(ctx.geo.border_provinces_with(country), key=lambda p: (ctx.geo.region_of(p) != region, p))
    units = [u for p in provinces for u in ctx.directory.units_of_kind(kind, Level.province, p)]
    return _Place(kind.value, f"provinces on the border with {country} ({region or 'any'} region first)", units)


def _service_place(service: Service, scope: Scope, ctx: _Context) -> _Place:
    area = _area(scope, ctx)
    what = f"unit offering {service}"
    if isinstance(area, str):
        return _Place(what, area, None)
    level, code, words = area
    return _Place(what, words, ctx.directory.units_offering(service, level, code))


__all__ = ["LOCAL_TZ", "Match", "Outcome", "SkipReason", "Step", "StepKind", "Verdict", "explain", "match"]
