"""The default rules against the REAL generated directory (generate.units(): 6,912 units for the 2025 map,
34 provinces, 3,321 communes) and the real fact files (regions, border, coastal, Coast Guard coverage).

Table-driven over real provinces and communes: every code is looked up by name or read from the fact
files, never typed in by hand. No database, no running service."""
import uuid
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from schemas.events.cases import CaseReported, VictimSummary
from schemas.geography import communes, provinces
from services.referral.directory import facts
from services.referral.directory.facts import (
    border_countries,
    coast_guard_coverage,
    coastal_provinces,
    directory_index,
    regional_centre_code,
    regions,
    resolve_province,
)
from services.referral.directory.generate import units
from services.referral.directory.model import DirectoryIndex, Level
from services.referral.directory.model import UnitKind as K
from services.referral.matching import DEFAULT_RULES, RuleBook, SkipReason, StepKind, explain, match

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
OFFICE = datetime(2026, 3, 10, 10, 0, tzinfo=HCM)  # a Tuesday, 10:00: offices open (Mon–Fri 07:30–17:00)
NIGHT = datetime(2026, 3, 10, 22, 0, tzinfo=HCM)  # the same Tuesday, 22:00: offices closed
SUNDAY = datetime(2026, 3, 15, 10, 0, tzinfo=HCM)  # a Sunday morning: offices closed all day

RULES = RuleBook(DEFAULT_RULES)
RULE_ORDER = [r.id for r in RULES.current.rules]
LAW_ENFORCEMENT = set(RULES.current.consent.law_enforcement_kinds)

# ---- real places, looked up -------------------------------------------------------------------------

ALL_PROVINCES = sorted(provinces())
COMMUNES_OF: dict[str, list[str]] = {p: [] for p in ALL_PROVINCES}
for _code, (_name, _province) in sorted(communes().items()):
    COMMUNES_OF[_province].append(_code)


def commune_named(province: str, name: str) -> str:
    (code,) = [c for c in COMMUNES_OF[province] if communes()[c][0] == name]
    return code


HANOI = resolve_province("Hà Nội")
LAO_CAI = resolve_province("Lào Cai")
QUANG_NINH = resolve_province("Quảng Ninh")
KHANH_HOA = resolve_province("Khánh Hòa")
THAI_NGUYEN = resolve_province("Thái Nguyên")
NHA_TRANG = commune_named(KHANH_HOA, "Phường Nha Trang")

BORDER = sorted(border_countries())
NON_BORDER = sorted(set(ALL_PROVINCES) - set(BORDER))
COASTAL = sorted(coastal_provinces())
INLAND = sorted(set(ALL_PROVINCES) - set(COASTAL))
INLAND_NON_BORDER = sorted(set(INLAND) & set(NON_BORDER))
COASTAL_NON_BORDER = sorted(set(COASTAL) & set(NON_BORDER))


def first_commune(province: str) -> str:
    return COMMUNES_OF[province][0]


def sample_communes(province: str, per_province: int = 6) -> list[str]:
    """`per_province` communes spread evenly over the province's code-ordered list (first and last included)."""
    codes = COMMUNES_OF[province]
    if len(codes) <= per_province:
        return list(codes)
    step = (len(codes) - 1) / (per_province - 1)
    return [codes[round(i * step)] for i in range(per_province)]


SAMPLE = {p: sample_communes(p) for p in ALL_PROVINCES}


def test_the_places_used_here_are_the_real_map():
    assert len(ALL_PROVINCES) == 34 and sum(map(len, COMMUNES_OF.values())) == 3321
    assert provinces()[LAO_CAI] == "Lào Cai" and provinces()[KHANH_HOA] == "Khánh Hòa"
    assert communes()[NHA_TRANG] == ("Phường Nha Trang", KHANH_HOA)
    # the sets the tables below walk through
    assert LAO_CAI in BORDER and "CN" in border_countries()[LAO_CAI]
    assert THAI_NGUYEN in INLAND_NON_BORDER and HANOI in INLAND_NON_BORDER
    assert KHANH_HOA in COASTAL_NON_BORDER
    assert len(BORDER) == 22 and len(COASTAL) == 21 and INLAND_NON_BORDER and COASTAL_NON_BORDER
    assert sum(map(len, SAMPLE.values())) >= 200 and all(len(s) == 6 for s in SAMPLE.values())
    assert set(regions().values()) == {"north", "central", "south"}


# ---- helpers ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def directory():
    return directory_index(units())


def adult(*needs):
    return VictimSummary(sex="female", age_band="21-23", is_child=False, needs=list(needs))


def child(*needs):
    return VictimSummary(sex="male", age_band="9-17", is_child=True, needs=list(needs))


def case(province: str, commune: str | None = "first", urgency: str = "normal", **kw) -> CaseReported:
    commune = first_commune(province) if commune == "first" else commune
    return CaseReported(case_id=uuid.uuid4(), case_number="111-2026-000001", province_code=province,
                        commune_code=commune, urgency=urgency, reported_at=OFFICE, channel="phone", **kw)


def chosen_by(matches, rule_id) -> set[str]:
    return {m.code for m in matches if rule_id in m.rules}


def steps_of(outcome, rule_id, need=None):
    return [s for s in outcome.trace if s.rule == rule_id and (need is None or s.need == need)]


def condition(outcome, rule_id):
    return steps_of(outcome, rule_id)[0]


# ---- police-commune, peoples-committee: every commune its own ------------------------------------------

def own_commune_problems(directory, province: str, codes: list[str]) -> list[str]:
    problems = []
    for commune in codes:
        out = explain(case(province, commune, "high"), directory, RULES, OFFICE)
        police = [m for m in out.matches if "police-commune" in m.rules]
        committee = [m for m in out.matches if "peoples-committee" in m.rules]
        if [m.code for m in police] != [f"police-commune-{commune}"] or \
                [m.code for m in committee] != [f"peoples-committee-{commune}"]:
            problems.append(f"{commune}: police {[m.code for m in police]}, committee {[m.code for m in committee]}")
            continue
        for m, kind in ((police[0], K.police_commune), (committee[0], K.peoples_committee)):
            u = m.unit
            if (u.kind, u.level, u.commune_code, u.province_code) != (kind, Level.commune, commune, province):
                problems.append(f"{commune}: {u.code} is {u.kind}/{u.level} in {u.province_code}/{u.commune_code}")
        if any(s.kind is not StepKind.chosen for s in steps_of(out, "police-commune")[1:]):
            problems.append(f"{commune}: police-commune did not take the commune police directly")
        if police[0].rules != ("police-commune",):
            problems.append(f"{commune}: commune police also chosen by {police[0].rules}")
        if out.unmatched:  # a plain case in any commune: every rule whose condition held found a unit
            problems.append(f"{commune}: unmatched {out.unmatched}")
    return problems


@pytest.mark.parametrize("province", ALL_PROVINCES)
def test_sampled_communes_of_every_province_get_their_own_police_and_committee(directory, province):
    assert own_commune_problems(directory, province, SAMPLE[province]) == []


def test_every_commune_of_quang_ninh_gets_its_own_police_and_committee(directory):
    assert len(COMMUNES_OF[QUANG_NINH]) == 54
    assert own_commune_problems(directory, QUANG_NINH, COMMUNES_OF[QUANG_NINH]) == []


def test_a_case_with_no_commune_falls_back_to_province_police_and_leaves_the_committee_unmatched(directory):
    out = explain(case(KHANH_HOA, None), directory, RULES, OFFICE)
    assert chosen_by(out.matches, "police-commune") == {f"police-province-{KHANH_HOA}"}
    assert "peoples-committee" in out.unmatched
    (last,) = [s for s in steps_of(out, "peoples-committee") if s.kind is StepKind.unmatched]
    assert "commune unknown" in last.text


# ---- police-province-urgent -----------------------------------------------------------------------------

@pytest.mark.parametrize("urgency", ["emergency", "high", "normal"])
@pytest.mark.parametrize("province", ALL_PROVINCES)
def test_high_and_emergency_add_the_province_police_normal_does_not(directory, province, urgency):
    out = explain(case(province, urgency=urgency), directory, RULES, NIGHT)
    head = condition(out, "police-province-urgent")
    assert head.kind is StepKind.condition and head.facts == {"urgency": urgency}
    if urgency == "normal":
        assert head.ok is False
        assert f"police-province-{province}" not in {m.code for m in out.matches}
    else:
        assert head.ok is True
        assert chosen_by(out.matches, "police-province-urgent") == {f"police-province-{province}"}
        (police,) = [m for m in out.matches if m.code == f"police-province-{province}"]
        assert police.unit.kind is K.police_province and police.unit.province_code == province


# ---- border-guard ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("province", BORDER)
def test_a_border_province_adds_its_border_guard_command(directory, province):
    out = explain(case(province), directory, RULES, OFFICE)
    assert chosen_by(out.matches, "border-guard") == {f"border-guard-{province}"}
    head = condition(out, "border-guard")
    assert head.ok is True and head.facts["border_province"] is True and head.facts["moving_across_border"] is False
    (guard,) = [m for m in out.matches if "border-guard" in m.rules]
    assert guard.unit.kind is K.border_guard_province and guard.unit.province_code == province


@pytest.mark.parametrize("province", NON_BORDER)
def test_a_non_border_province_adds_no_border_guard(directory, province):
    out = explain(case(province), directory, RULES, OFFICE)
    head = condition(out, "border-guard")
    assert head.ok is False
    assert head.facts == {"province_code": province, "border_province": False, "moving_across_border": False}
    assert not [m for m in out.matches if m.unit.kind in (K.border_guard_province, K.border_post)]
    assert "border-guard" not in out.unmatched


@pytest.mark.parametrize("province", COASTAL_NON_BORDER)
def test_moving_across_border_in_a_coastal_non_border_province_adds_its_border_guard(directory, province):
    out = explain(case(province, urgency="emergency", moving_across_border=True, destination_country="CN"),
                  directory, RULES, OFFICE)
    head = condition(out, "border-guard")
    assert head.ok is True and head.facts["border_province"] is False and head.facts["moving_across_border"] is True
    assert chosen_by(out.matches, "border-guard") == {f"border-guard-{province}"}


@pytest.mark.parametrize("province", INLAND_NON_BORDER)
@pytest.mark.parametrize(("destination", "command"), [("CN", "04"), ("LA", "11"), ("KH", "51")])
def test_moving_across_border_from_an_inland_province_reaches_the_border_being_crossed(directory, province,
                                                                                     destination, command):
    """An inland province has no Border Guard command: the rule falls back to the command of a province on
    the border with the destination, the case's own region (all four are northern) first, then code order:
    Cao Bằng for China, Điện Biên for Laos; no northern province borders Cambodia, so Quảng Ngãi."""
    out = explain(case(province, urgency="emergency", moving_across_border=True, destination_country=destination),
                  directory, RULES, OFFICE)
    head = condition(out, "border-guard")
    assert head.ok is True and head.facts["moving_across_border"] is True and head.facts["border_province"] is False
    assert chosen_by(out.matches, "border-guard") == {f"border-guard-{command}"}
    assert "border-guard" not in out.unmatched
    assert destination in border_countries()[command]
    assert f"provinces on the border with {destination} (north region first)" in steps_of(out, "border-guard")[-1].text


@pytest.mark.parametrize("province", INLAND_NON_BORDER)
def test_moving_across_border_to_an_unknown_destination_is_traced_unmatched(directory, province):
    """Without a destination the border crossed is unknown: the trace and `unmatched` say so, and the
    operator acts by hand."""
    out = explain(case(province, urgency="emergency", moving_across_border=True), directory, RULES, OFFICE)
    assert chosen_by(out.matches, "border-guard") == set()
    assert "border-guard" in out.unmatched
    last = steps_of(out, "border-guard")[-1]
    assert last.kind is StepKind.unmatched and "no destination_country in the facts" in last.text


def test_the_border_crossed_is_searched_in_the_cases_region_first(directory):
    """Every inland province is northern, so the order is shown on the map with Hà Nội moved south."""
    moved = DirectoryIndex(directory.units, province_regions={**directory.province_regions, HANOI: "south"},
                           border_provinces=directory.border_provinces, border_countries=directory.border_countries,
                           coastal_provinces=directory.coastal_provinces, coverage=directory.coverage)
    out = explain(case(HANOI, urgency="high", moving_across_border=True, destination_country="KH"),
                  moved, RULES, OFFICE)
    assert chosen_by(out.matches, "border-guard") == {"border-guard-75"}  # Đồng Nai: the first southern one


# ---- coast-guard ----------------------------------------------------------------------------------------

def test_coast_guard_coverage_spans_all_four_regions():
    assert set(coast_guard_coverage()) == set(COASTAL)
    assert sorted(set(coast_guard_coverage().values())) == [f"coast-guard-region-{r}" for r in (1, 2, 3, 4)]


@pytest.mark.parametrize("province", COASTAL)
def test_at_sea_in_a_coastal_province_adds_exactly_its_coast_guard_region(directory, province):
    out = explain(case(province, at_sea=True), directory, RULES, OFFICE)
    expected = coast_guard_coverage()[province]
    assert chosen_by(out.matches, "coast-guard") == {expected}
    assert [m.code for m in out.matches if m.unit.kind is K.coast_guard_region] == [expected]
    assert "coast-guard" not in out.unmatched
    chosen = [s for s in steps_of(out, "coast-guard") if s.kind is StepKind.chosen]
    assert [s.unit for s in chosen] == [expected] and f"covering province {province}" in chosen[0].text
    # ashore, the Coast Guard is not told
    ashore = match(case(province), directory, RULES, OFFICE)
    assert not [m for m in ashore if m.unit.kind is K.coast_guard_region]


@pytest.mark.parametrize("province", INLAND)
def test_at_sea_in_an_inland_province_is_traced_unmatched(directory, province):
    out = explain(case(province, at_sea=True), directory, RULES, OFFICE)
    assert condition(out, "coast-guard").ok is True
    assert not [m for m in out.matches if m.unit.kind is K.coast_guard_region]
    assert "coast-guard" in out.unmatched
    last = steps_of(out, "coast-guard")[-1]
    assert last.kind is StepKind.unmatched
    assert f"no coast_guard_region for the area covering province {province} in the directory" in last.text


# ---- support-needs --------------------------------------------------------------------------------------

# (need, urgency, at, unit chosen ("{p}" = the province) or None when unmatched, units skipped as closed_now)
NEED_ROWS = [
    # No commune unit offers any of these: each climbs to the province. Ties go to the first code.
    ("medical", "normal", OFFICE, "health-{p}", []),
    ("medical", "normal", NIGHT, "health-{p}", []),  # only emergencies ask for open now
    ("medical", "emergency", OFFICE, "health-{p}", []),
    ("medical", "emergency", NIGHT, "hospital-{p}", ["health-{p}"]),  # the hospital's 24/7 duty line
    ("medical", "emergency", SUNDAY, "hospital-{p}", ["health-{p}"]),
    ("psychological", "normal", OFFICE, "social-protection-{p}", []),
    ("psychological", "emergency", NIGHT, "social-protection-{p}", []),  # duty line: emergency admissions
    ("shelter", "normal", OFFICE, "social-protection-{p}", []),
    ("shelter", "normal", NIGHT, "social-protection-{p}", []),
    ("shelter", "emergency", NIGHT, "social-protection-{p}", []),
    ("shelter", "emergency", SUNDAY, "social-protection-{p}", []),
    ("legal_aid", "normal", OFFICE, "legal-aid-{p}", []),
    ("legal_aid", "normal", NIGHT, "legal-aid-{p}", []),
    ("legal_aid", "emergency", OFFICE, "legal-aid-{p}", []),
    # Legal aid keeps office hours only: in an emergency at night nobody is open, no region offers it.
    ("legal_aid", "emergency", NIGHT, None, ["legal-aid-{p}"]),
    ("documents", "normal", OFFICE, "health-{p}", []),
    ("documents", "normal", NIGHT, "health-{p}", []),
    ("documents", "emergency", OFFICE, "health-{p}", []),
    ("documents", "emergency", NIGHT, None, ["health-{p}", "legal-aid-{p}"]),
    ("documents", "emergency", SUNDAY, None, ["health-{p}", "legal-aid-{p}"]),
]


@pytest.mark.parametrize(("need", "urgency", "at", "unit", "closed"), NEED_ROWS,
                         ids=[f"{r[0]}-{r[1]}-{r[2]:%a%H%M}" for r in NEED_ROWS])
def test_each_need_goes_to_the_nearest_active_unit_offering_it(directory, need, urgency, at, unit, closed):
    problems = []
    for p in ALL_PROVINCES:
        commune = first_commune(p)
        region = regions()[p]
        out = explain(case(p, commune, urgency, victims=[adult(need)]), directory, RULES, at)
        steps = steps_of(out, "support-needs", need)
        chosen = chosen_by(out.matches, "support-needs")
        # first it looked in the commune, found nobody offering it and climbed to the province
        if not (steps and steps[0].kind is StepKind.fallback
                and f"no unit offering {need} for commune {commune} in the directory" in steps[0].text
                and f"falling back to unit offering {need} for province {p}" in steps[0].text):
            problems.append(f"{p}: first step {steps[:1]}")
        skipped_closed = [s.unit for s in steps if s.skip is SkipReason.closed_now]
        if skipped_closed != [c.format(p=p) for c in closed]:
            problems.append(f"{p}: closed_now skips {skipped_closed}")
        for s in steps:
            if s.skip is SkipReason.closed_now and f"{at:%a %H:%M} Asia/Ho_Chi_Minh" not in s.text:
                problems.append(f"{p}: closed_now step does not give the local time: {s.text}")
        if unit is None:
            if chosen or out.unmatched != (f"support-needs:{need}",):
                problems.append(f"{p}: expected unmatched, got {chosen} / {out.unmatched}")
            last = steps[-1]
            if not (last.kind is StepKind.unmatched
                    and f"no unit offering {need} for region {region} (province {p}) in the directory" in last.text
                    and f"no unit chosen for need {need}" in last.text):
                problems.append(f"{p}: last step {last}")
            continue
        expected = unit.format(p=p)
        if chosen != {expected} or out.unmatched:
            problems.append(f"{p}: chose {chosen}, unmatched {out.unmatched}, expected {expected}")
            continue
        (m,) = [m for m in out.matches if m.code == expected]
        if m.needs != (need,) or need not in m.unit.services or m.unit.province_code != p:
            problems.append(f"{p}: {m.code} needs={m.needs} services={sorted(m.unit.services)}")
        if urgency == "emergency" and not m.unit.open_at(at.astimezone(HCM)):
            problems.append(f"{p}: {m.code} is not open at {at}")
        (pick,) = [s for s in steps if s.kind is StepKind.chosen]
        if urgency == "emergency":
            note = ("reachable by a 24/7 duty contact" if m.unit.has_duty_contact
                    else f"open now ({at:%a %H:%M} Asia/Ho_Chi_Minh)")
            if note not in pick.text:
                problems.append(f"{p}: chosen step does not say why it is open: {pick.text}")
        if f"need {need}" not in m.reasons["support-needs"]:
            problems.append(f"{p}: reason {m.reasons}")
    assert problems == []


def test_in_an_emergency_at_night_every_support_unit_chosen_is_on_24_7_duty(directory):
    needs = ("medical", "psychological", "shelter", "legal_aid", "documents")
    for p in ALL_PROVINCES:
        out = explain(case(p, urgency="emergency", victims=[adult(*needs)]), directory, RULES, NIGHT)
        support = [m for m in out.matches if "support-needs" in m.rules]
        assert {m.code for m in support} == {f"hospital-{p}", f"social-protection-{p}"}, p
        assert all(m.unit.has_duty_contact for m in support), p
        assert sorted(out.unmatched) == ["support-needs:documents", "support-needs:legal_aid"], p
        (centre,) = [m for m in support if m.code == f"social-protection-{p}"]
        assert centre.needs == ("psychological", "shelter")  # one referral serving both needs


def test_needs_outside_the_rule_are_not_routed(directory):
    out = explain(case(KHANH_HOA, victims=[adult("repatriation", "travel_and_meals")]), directory, RULES, OFFICE)
    assert chosen_by(out.matches, "support-needs") == set() and out.unmatched == ()
    (second,) = [s for s in steps_of(out, "support-needs") if s.kind is StepKind.condition][1:]
    assert second.ok is False and "routed here: none" in second.text


# ---- child-protection -----------------------------------------------------------------------------------

@pytest.mark.parametrize("province", ALL_PROVINCES)
def test_a_child_involved_adds_child_protection(directory, province):
    expected = {f"social-protection-{province}"}
    for facts_, at in (({"victims": [child()]}, OFFICE), ({"child_involved": True}, OFFICE),
                       ({"victims": [child()], "urgency": "emergency"}, NIGHT)):
        out = explain(case(province, **facts_), directory, RULES, at)
        assert condition(out, "child-protection").ok is True
        assert chosen_by(out.matches, "child-protection") == expected, facts_
        (m,) = [m for m in out.matches if "child-protection" in m.rules]
        assert "child_protection" in m.unit.services
    adult_only = explain(case(province, victims=[adult()]), directory, RULES, OFFICE)
    head = condition(adult_only, "child-protection")
    assert head.ok is False and head.facts == {"child_involved": False, "any_victim_is_child": False}
    assert chosen_by(adult_only.matches, "child-protection") == set()


# ---- abroad ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("country", sorted(facts.COUNTRY_NAMES))
def test_abroad_in_a_neighbour_adds_consular_and_its_counterpart(directory, country):
    out = explain(case(HANOI, abroad_country=country), directory, RULES, OFFICE)
    assert chosen_by(out.matches, "abroad-consular") == {"mofa-consular"}
    assert chosen_by(out.matches, "abroad-counterpart") == {f"counterpart-{country.lower()}"}
    (counterpart,) = [m for m in out.matches if "abroad-counterpart" in m.rules]
    assert counterpart.unit.kind is K.counterpart and counterpart.unit.country == country
    assert out.unmatched == ()


@pytest.mark.parametrize("country", ["MY", "TH"])
def test_abroad_without_a_counterpart_adds_consular_and_says_why(directory, country):
    out = explain(case(HANOI, abroad_country=country), directory, RULES, OFFICE)
    assert chosen_by(out.matches, "abroad-consular") == {"mofa-consular"}
    assert chosen_by(out.matches, "abroad-counterpart") == set()
    assert out.unmatched == ("abroad-counterpart",)
    head, *_, last = steps_of(out, "abroad-counterpart")
    assert head.ok is True and head.facts == {"abroad_country": country}
    assert last.kind is StepKind.unmatched
    assert f"no counterpart for country {country} in the directory" in last.text


def test_not_abroad_adds_neither(directory):
    out = explain(case(HANOI), directory, RULES, OFFICE)
    assert condition(out, "abroad-consular").ok is False and condition(out, "abroad-counterpart").ok is False
    assert not [m for m in out.matches if m.unit.kind in (K.consular_department, K.counterpart)]


# ---- regional-centre-emergency --------------------------------------------------------------------------

def test_the_provinces_span_the_three_regions():
    assert Counter(regions()[p] for p in ALL_PROVINCES) == {"north": 20, "central": 6, "south": 8}
    assert regional_centre_code("north") == "hotline-national-centre"


@pytest.mark.parametrize("province", ALL_PROVINCES)
def test_an_emergency_adds_the_regional_centre_of_its_region(directory, province):
    region = regions()[province]
    expected = regional_centre_code(region)
    out = explain(case(province, urgency="emergency"), directory, RULES, NIGHT)
    assert chosen_by(out.matches, "regional-centre-emergency") == {expected}
    steps = steps_of(out, "regional-centre-emergency")
    if region == "north":  # the north's centre is the national centre in Hanoi: reached by the fallback
        assert [s.kind for s in steps] == [StepKind.condition, StepKind.fallback, StepKind.chosen]
        assert f"no regional_centre for region north (province {province}) in the directory" in steps[1].text
        assert "falling back to national_centre for the nation" in steps[1].text
    else:
        assert [s.kind for s in steps] == [StepKind.condition, StepKind.chosen]
        (centre,) = [m for m in out.matches if m.code == expected]
        assert centre.unit.region == region
    high = explain(case(province, urgency="high"), directory, RULES, NIGHT)
    assert condition(high, "regional-centre-emergency").ok is False
    assert chosen_by(high.matches, "regional-centre-emergency") == set()


# ---- consent --------------------------------------------------------------------------------------------

CONSENT_ROWS = [
    # (who, facts, law enforcement gets identity, everyone else gets identity)
    ("adult without consent", {"victims": [adult("shelter")]}, False, False),
    ("adult with consent", {"victims": [adult("shelter")], "consent_share_identity": True}, True, True),
    ("child victim without consent", {"victims": [child("shelter")]}, True, False),
    ("child flag without consent", {"victims": [adult("shelter")], "child_involved": True}, True, False),
    ("immediate danger without consent", {"victims": [adult("shelter")], "immediate_danger": True}, True, False),
    ("child with consent", {"victims": [child("shelter")], "consent_share_identity": True}, True, True),
]


@pytest.mark.parametrize(("who", "facts_", "police", "others"), CONSENT_ROWS, ids=[r[0] for r in CONSENT_ROWS])
def test_consent_decides_what_each_referral_carries_never_whether_it_is_made(directory, who, facts_, police, others):
    out = explain(case(KHANH_HOA, NHA_TRANG, "high", at_sea=True, **facts_), directory, RULES, OFFICE)
    by_code = {m.code: m for m in out.matches}
    # the referrals are made whatever the consent
    law = {f"police-commune-{NHA_TRANG}", f"police-province-{KHANH_HOA}", coast_guard_coverage()[KHANH_HOA]}
    rest = {f"peoples-committee-{NHA_TRANG}", f"social-protection-{KHANH_HOA}"}
    assert law | rest <= set(by_code)
    for m in out.matches:
        is_law = m.unit.kind in LAW_ENFORCEMENT
        assert m.identity_shared is (police if is_law else others), (m.code, who)
        step = m.trace[-1]
        assert step.kind is StepKind.consent and step.unit == m.code and step.ok is m.identity_shared
        assert ("law-enforcement unit" if is_law else "unit outside law enforcement") in step.text
        assert ("identity shared" if m.identity_shared else "identity withheld (facts only)") in step.text
    assert {c for c in law if by_code[c].unit.kind in LAW_ENFORCEMENT} == law
    assert by_code[f"social-protection-{KHANH_HOA}"].identity_shared is others  # the shelter: only with consent


# ---- the trace and dedup over whole cases ---------------------------------------------------------------

def busy(province: str, commune: str | None, country: str) -> CaseReported:
    return case(province, commune, "emergency", at_sea=True, moving_across_border=True, destination_country="CN",
                abroad_country=country, immediate_danger=True,
                victims=[child("medical", "shelter", "psychological"),
                         adult("legal_aid", "documents", "shelter", "repatriation")])


@pytest.mark.parametrize("at", [OFFICE, NIGHT], ids=["office", "night"])
@pytest.mark.parametrize("province", ALL_PROVINCES)
def test_every_match_is_explained_once_with_a_reason_per_rule(directory, province, at):
    for facts_ in (busy(province, first_commune(province), "LA"), busy(province, None, "MY"),
                   case(province), case(province, urgency="high", victims=[adult("medical")])):
        out = explain(facts_, directory, RULES, at)
        codes = [m.code for m in out.matches]
        assert len(codes) == len(set(codes)), Counter(codes).most_common(3)  # no unit twice
        assert {s.unit for s in out.trace if s.kind is StepKind.chosen} == set(codes)
        for m in out.matches:
            assert m.trace and m.trace[-1].kind is StepKind.consent and m.trace[-1].unit == m.code
            assert m.rules and list(m.rules) == sorted(m.rules, key=RULE_ORDER.index)
            assert set(m.reasons) == set(m.rules) and all(m.reasons.values())
            for rule in m.rules:
                mine = [s for s in m.trace if s.rule == rule]
                assert mine[0].kind is StepKind.condition and mine[0].ok is True
                assert any(s.kind is StepKind.chosen and s.unit == m.code for s in mine), (m.code, rule)
                assert m.reasons[rule].startswith(next(r.reason for r in RULES.current.rules if r.id == rule))
            assert m.unit.status == "active"
        # every rule is traced, starting with its condition; what held and found nobody is named
        for rule in RULE_ORDER:
            assert steps_of(out, rule)[0].kind is StepKind.condition
        for entry in out.unmatched:
            rule, _, need = entry.partition(":")
            assert any(s.kind is StepKind.unmatched and (not need or s.need == need) for s in steps_of(out, rule))


def test_a_unit_chosen_by_several_rules_is_one_match_listing_them_all(directory):
    # no commune: the commune police fall back to the province police, which the urgent rule also takes;
    # the social protection centre serves shelter, psychological support and child protection
    out = explain(case(KHANH_HOA, None, "high", victims=[child("shelter", "psychological")]), directory, RULES, OFFICE)
    (police,) = [m for m in out.matches if m.code == f"police-province-{KHANH_HOA}"]
    assert police.rules == ("police-commune", "police-province-urgent")
    assert "after falling back from" in police.reasons["police-commune"]
    (centre,) = [m for m in out.matches if m.code == f"social-protection-{KHANH_HOA}"]
    assert centre.rules == ("support-needs", "child-protection")
    assert centre.needs == ("psychological", "shelter")  # in the rule's each_need order


def test_matching_the_real_directory_is_deterministic(directory):
    facts_ = busy(KHANH_HOA, NHA_TRANG, "KH")
    a = explain(facts_, directory, RULES, NIGHT)
    b = explain(facts_.model_dump(mode="json"), directory, RULES.current, NIGHT.astimezone(ZoneInfo("UTC")))
    assert [m.code for m in a.matches] == [m.code for m in b.matches]
    assert [str(s) for s in a.trace] == [str(s) for s in b.trace]
