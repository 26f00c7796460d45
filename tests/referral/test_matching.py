"""Referral matching: the default rules against a small hand-built directory, the consent policy, the
trace, and RuleBook reloading. Pure Python: no database, no generated data files."""
import os
import shutil
import uuid
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events.cases import CaseReported, VictimSummary
from schemas.geography import communes, provinces
from services.referral.directory.model import (
    Channel,
    Contact,
    DirectoryIndex,
    Level,
    OpeningHours,
    Service,
    Unit,
    UnitKind,
    UnitStatus,
)
from services.referral.matching import (
    DEFAULT_RULES,
    RuleBook,
    RulesError,
    SkipReason,
    StepKind,
    explain,
    match,
    parse_rules,
    validate_rules,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
OFFICE = datetime(2026, 3, 10, 10, 0, tzinfo=HCM).astimezone(UTC)  # a Tuesday morning, given in UTC
NIGHT = datetime(2026, 3, 10, 22, 0, tzinfo=HCM)

HANOI, LAO_CAI, DA_NANG, KHANH_HOA, AN_GIANG = "01", "15", "48", "56", "91"
HOAN_KIEM = "00070"  # Hà Nội, has commune police
KHAO_MANG = "04465"  # Lào Cai, no commune police listed
NHA_TRANG = "22366"  # Khánh Hòa, commune police inactive
BAC_NHA_TRANG = "22333"  # Khánh Hòa, commune police temporarily closed
HAI_CHAU = "20242"  # Đà Nẵng

WEEKDAYS_8_TO_5 = tuple(OpeningHours(d, time(8), time(17)) for d in range(5))
DUTY = (Contact(Channel.sms, "+84900000000", duty_24_7=True),)


def test_fixture_places_are_real_codes():
    assert "Lào Cai" in provinces()[LAO_CAI] and "Khánh Hòa" in provinces()[KHANH_HOA]
    assert "An Giang" in provinces()[AN_GIANG] and "Đà Nẵng" in provinces()[DA_NANG]
    for commune, province in [(HOAN_KIEM, HANOI), (KHAO_MANG, LAO_CAI), (NHA_TRANG, KHANH_HOA),
                              (BAC_NHA_TRANG, KHANH_HOA), (HAI_CHAU, DA_NANG)]:
        assert communes()[commune][1] == province


def unit(code: str, kind: UnitKind, level: Level, services=(), **kw) -> Unit:
    return Unit(id=uuid.uuid5(uuid.NAMESPACE_URL, code), code=code, name=code.replace("-", " ").title(), kind=kind,
                level=level, services=frozenset(services), **kw)


def commune_unit(code, kind, commune, province, services=(), **kw):
    return unit(code, kind, Level.commune, services, commune_code=commune, province_code=province, **kw)


def province_unit(code, kind, province, services=(), **kw):
    return unit(code, kind, Level.province, services, province_code=province, **kw)


def region_unit(code, kind, region, services=(), **kw):
    return unit(code, kind, Level.region, services, region=region, **kw)


K = UnitKind
S = Service
UNITS = [
    commune_unit("police-commune-00070", K.police_commune, HOAN_KIEM, HANOI),
    commune_unit("police-commune-22366", K.police_commune, NHA_TRANG, KHANH_HOA, status=UnitStatus.inactive),
    commune_unit("police-commune-22333", K.police_commune, BAC_NHA_TRANG, KHANH_HOA,
                 status=UnitStatus.temporarily_closed),
    *(province_unit(f"police-province-{p}", K.police_province, p)
      for p in (HANOI, LAO_CAI, DA_NANG, KHANH_HOA, AN_GIANG)),
    *(province_unit(f"border-guard-{p}", K.border_guard_province, p) for p in (LAO_CAI, DA_NANG, KHANH_HOA, AN_GIANG)),
    region_unit("coast-guard-region-3", K.coast_guard_region, "coast-guard-3"),
    commune_unit("peoples-committee-00070", K.peoples_committee, HOAN_KIEM, HANOI, [S.reception]),
    commune_unit("peoples-committee-04465", K.peoples_committee, KHAO_MANG, LAO_CAI, [S.reception]),
    # Support in Hà Nội: a commune health station, two province shelters (one with a 24/7 duty line),
    # psychological support that is inactive / temporarily closed at the province, and only regional legal aid.
    commune_unit("health-station-00070", K.hospital, HOAN_KIEM, HANOI, [S.medical], opening_hours=WEEKDAYS_8_TO_5),
    province_unit("shelter-01", K.womens_union_shelter, HANOI, [S.shelter], opening_hours=WEEKDAYS_8_TO_5),
    province_unit("shelter-01-duty", K.social_protection_centre, HANOI, [S.shelter], contacts=DUTY),
    province_unit("psych-01a", K.psychological_support, HANOI, [S.psychological], status=UnitStatus.inactive),
    province_unit("psych-01b", K.psychological_support, HANOI, [S.psychological],
                  status=UnitStatus.temporarily_closed),
    region_unit("psych-north", K.psychological_support, "north", [S.psychological], contacts=DUTY),
    region_unit("legal-aid-north", K.legal_aid_centre, "north", [S.legal_aid], opening_hours=WEEKDAYS_8_TO_5),
    # One Lào Cai centre offering both medical and shelter (for dedup across needs).
    province_unit("social-centre-15", K.social_protection_centre, LAO_CAI, [S.medical, S.shelter], contacts=DUTY),
    province_unit("child-protection-01", K.child_protection_centre, HANOI, [S.child_protection]),
    region_unit("child-protection-central", K.child_protection_centre, "central", [S.child_protection]),
    unit("consular-department", K.consular_department, Level.national, [S.consular]),
    unit("counterpart-cn-hekou", K.counterpart, Level.international, country="CN"),
    region_unit("regional-centre-central", K.regional_centre, "central", [S.coordination]),
    region_unit("regional-centre-south", K.regional_centre, "south", [S.coordination]),
    unit("national-centre", K.national_centre, Level.national, [S.coordination]),
]
DIRECTORY = DirectoryIndex(
    UNITS,
    province_regions={HANOI: "north", LAO_CAI: "north", DA_NANG: "central", KHANH_HOA: "central", AN_GIANG: "south"},
    border_provinces=frozenset({LAO_CAI, DA_NANG, AN_GIANG}),
    coastal_provinces=frozenset({DA_NANG, KHANH_HOA, AN_GIANG}),
    coverage={DA_NANG: frozenset({"coast-guard-region-3"}), KHANH_HOA: frozenset({"coast-guard-region-3"})},
)
RULES = RuleBook(DEFAULT_RULES)


def adult(*needs, **kw):
    return VictimSummary(sex="female", age_band="18-20", is_child=False, needs=list(needs), **kw)


def child(*needs):
    return VictimSummary(sex="female", age_band="9-17", is_child=True, needs=list(needs))


def case(province=HANOI, commune=HOAN_KIEM, urgency="normal", **kw) -> CaseReported:
    return CaseReported(case_id=uuid.uuid4(), case_number="111-2026-000042", province_code=province,
                        commune_code=commune, urgency=urgency, reported_at=OFFICE, channel="phone", **kw)


def chosen_by(matches, rule_id):
    return {m.code for m in matches if rule_id in m.rules}


# ---- one row per default rule ---------------------------------------------------------------------

RULE_ROWS = [
    # (rule, facts, now, expected unit codes chosen by that rule)
    ("police-commune", case(), OFFICE, {"police-commune-00070"}),
    ("police-commune", case(LAO_CAI, KHAO_MANG), OFFICE, {"police-province-15"}),  # fallback
    ("police-commune", case(commune=None), OFFICE, {"police-province-01"}),  # commune unknown
    ("police-province-urgent", case(urgency="high"), OFFICE, {"police-province-01"}),
    ("police-province-urgent", case(urgency="emergency"), NIGHT, {"police-province-01"}),
    ("police-province-urgent", case(), OFFICE, set()),
    ("border-guard", case(LAO_CAI, KHAO_MANG), OFFICE, {"border-guard-15"}),  # border province
    ("border-guard", case(KHANH_HOA, NHA_TRANG, moving_across_border=True), OFFICE, {"border-guard-56"}),
    ("border-guard", case(KHANH_HOA, NHA_TRANG), OFFICE, set()),
    ("coast-guard", case(KHANH_HOA, NHA_TRANG, at_sea=True), OFFICE, {"coast-guard-region-3"}),
    ("coast-guard", case(KHANH_HOA, NHA_TRANG), OFFICE, set()),
    ("peoples-committee", case(), OFFICE, {"peoples-committee-00070"}),
    ("support-needs", case(victims=[adult("medical", "shelter"), adult("legal_aid", "repatriation")]), OFFICE,
     {"health-station-00070", "shelter-01", "legal-aid-north"}),
    ("support-needs", case(victims=[adult("psychological")]), OFFICE, {"psych-north"}),  # province inactive/closed
    ("child-protection", case(victims=[child()]), OFFICE, {"child-protection-01"}),
    ("child-protection", case(DA_NANG, HAI_CHAU, child_involved=True), OFFICE, {"child-protection-central"}),
    ("child-protection", case(victims=[adult()]), OFFICE, set()),
    ("abroad-consular", case(abroad_country="CN"), OFFICE, {"consular-department"}),
    ("abroad-counterpart", case(abroad_country="CN"), OFFICE, {"counterpart-cn-hekou"}),
    ("abroad-counterpart", case(abroad_country="TH"), OFFICE, set()),  # no counterpart listed
    ("regional-centre-emergency", case(DA_NANG, HAI_CHAU, urgency="emergency"), OFFICE, {"regional-centre-central"}),
    ("regional-centre-emergency", case(AN_GIANG, None, urgency="emergency"), OFFICE, {"regional-centre-south"}),
    ("regional-centre-emergency", case(urgency="emergency"), OFFICE, {"national-centre"}),  # the north's centre
    ("regional-centre-emergency", case(DA_NANG, HAI_CHAU, urgency="high"), OFFICE, set()),
]


@pytest.mark.parametrize(("rule", "facts", "now", "expected"), RULE_ROWS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(RULE_ROWS)])
def test_each_default_rule(rule, facts, now, expected):
    assert chosen_by(match(facts, DIRECTORY, RULES, now), rule) == expected


def test_a_plain_case_goes_to_commune_police_and_committee_only():
    assert [m.code for m in match(case(), DIRECTORY, RULES, OFFICE)] == ["police-commune-00070",
                                                                          "peoples-committee-00070"]


def test_a_false_condition_is_traced_with_the_facts_that_decided():
    out = explain(case(), DIRECTORY, RULES, OFFICE)
    step = next(s for s in out.trace if s.rule == "coast-guard")
    assert step.kind is StepKind.condition and step.ok is False and step.facts == {"at_sea": False}
    border = next(s for s in out.trace if s.rule == "border-guard")
    assert border.facts == {"province_code": HANOI, "border_province": False, "moving_across_border": False}
    assert "any(" in border.text and "→ false" in border.text


# ---- fallbacks and skipped candidates -------------------------------------------------------------

def steps_of(out, rule):
    return [s for s in out.trace if s.rule == rule]


def test_no_commune_police_falls_back_to_province_police_in_the_trace():
    out = explain(case(LAO_CAI, KHAO_MANG), DIRECTORY, RULES, OFFICE)
    kinds = [s.kind for s in steps_of(out, "police-commune")]
    assert kinds == [StepKind.condition, StepKind.fallback, StepKind.chosen]
    fallback = steps_of(out, "police-commune")[1]
    assert "no police_commune for commune 04465 in the directory" in fallback.text
    assert "falling back to police_province for province 15" in fallback.text
    (police,) = [m for m in out.matches if m.code == "police-province-15"]
    assert "after falling back from: no police_commune for commune 04465" in police.reasons["police-commune"]


@pytest.mark.parametrize(("commune", "reason"), [(NHA_TRANG, SkipReason.inactive),
                                                 (BAC_NHA_TRANG, SkipReason.temporarily_closed)])
def test_inactive_and_temporarily_closed_police_are_skipped(commune, reason):
    out = explain(case(KHANH_HOA, commune), DIRECTORY, RULES, OFFICE)
    steps = steps_of(out, "police-commune")
    assert [s.kind for s in steps] == [StepKind.condition, StepKind.skipped, StepKind.fallback, StepKind.chosen]
    assert steps[1].unit == f"police-commune-{commune}" and steps[1].skip is reason
    assert steps[3].unit == "police-province-56"


def test_support_climbs_commune_province_region_and_says_why():
    out = explain(case(victims=[adult("psychological")]), DIRECTORY, RULES, OFFICE)
    steps = [s for s in steps_of(out, "support-needs") if s.need == "psychological"]
    assert [(s.kind, s.unit, s.skip) for s in steps] == [
        (StepKind.fallback, None, None),  # nothing at the commune
        (StepKind.skipped, "psych-01a", SkipReason.inactive),
        (StepKind.skipped, "psych-01b", SkipReason.temporarily_closed),
        (StepKind.fallback, None, None),
        (StepKind.chosen, "psych-north", None),
    ]


def test_a_need_nobody_offers_is_reported_unmatched():
    out = explain(case(victims=[adult("documents")]), DIRECTORY, RULES, OFFICE)
    assert out.unmatched == ("support-needs:documents",)
    last = steps_of(out, "support-needs")[-1]
    assert last.kind is StepKind.unmatched and "no unit chosen for need documents" in last.text


# ---- emergencies and opening hours ----------------------------------------------------------------

@pytest.mark.parametrize(("urgency", "now", "chosen", "skipped"), [
    ("emergency", NIGHT, "shelter-01-duty", ("shelter-01", SkipReason.closed_now)),
    ("emergency", OFFICE, "shelter-01", ("shelter-01-duty", SkipReason.another_chosen)),
    ("normal", NIGHT, "shelter-01", ("shelter-01-duty", SkipReason.another_chosen)),  # only emergencies need open-now
])
def test_emergency_takes_only_units_open_now_or_on_24_7_duty(urgency, now, chosen, skipped):
    out = explain(case(urgency=urgency, victims=[adult("shelter")]), DIRECTORY, RULES, now)
    assert chosen_by(out.matches, "support-needs") == {chosen}
    steps = {s.unit: s for s in steps_of(out, "support-needs") if s.unit}
    assert steps[skipped[0]].skip is skipped[1]
    if skipped[1] is SkipReason.closed_now:
        assert "Tue 22:00 Asia/Ho_Chi_Minh" in steps[skipped[0]].text
        assert "24/7 duty contact" in steps[chosen].text


def test_emergency_at_night_skips_the_closed_health_station_and_finds_nothing_else():
    out = explain(case(urgency="emergency", victims=[adult("medical")]), DIRECTORY, RULES, NIGHT)
    assert "support-needs:medical" in out.unmatched
    skipped = [s for s in steps_of(out, "support-needs") if s.unit == "health-station-00070"]
    assert skipped[0].skip is SkipReason.closed_now


def test_police_are_not_held_to_opening_hours():
    assert chosen_by(match(case(urgency="emergency"), DIRECTORY, RULES, NIGHT), "police-commune") == {
        "police-commune-00070"}


def test_now_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        match(case(), DIRECTORY, RULES, datetime(2026, 3, 10, 10, 0))


# ---- dedup ----------------------------------------------------------------------------------------

def test_a_unit_chosen_by_two_rules_appears_once_with_both_in_its_trace():
    matches = match(case(commune=None, urgency="high"), DIRECTORY, RULES, OFFICE)
    police = [m for m in matches if m.code == "police-province-01"]
    assert len(police) == 1
    (m,) = police
    assert m.rules == ("police-commune", "police-province-urgent")
    assert set(m.reasons) == set(m.rules)
    assert {s.rule for s in m.trace} == {"police-commune", "police-province-urgent", "consent"}
    assert [s.kind for s in m.trace if s.rule == "police-province-urgent"] == [StepKind.condition, StepKind.chosen]


def test_one_unit_serving_two_needs_is_one_match_listing_both():
    matches = match(case(LAO_CAI, KHAO_MANG, victims=[adult("medical"), adult("shelter")]), DIRECTORY, RULES, OFFICE)
    (centre,) = [m for m in matches if m.code == "social-centre-15"]
    assert centre.rules == ("support-needs",) and centre.needs == ("medical", "shelter")
    assert "need medical" in centre.reasons["support-needs"] and "need shelter" in centre.reasons["support-needs"]


# ---- consent --------------------------------------------------------------------------------------

CONSENT_ROWS = [
    # (who, facts overrides, police gets identity, shelter gets identity)
    ("adult without consent", {"victims": [adult("shelter")]}, False, False),
    ("adult with consent", {"victims": [adult("shelter")], "consent_share_identity": True}, True, True),
    ("child without consent", {"victims": [child("shelter")]}, True, False),
    ("child flag only", {"victims": [adult("shelter")], "child_involved": True}, True, False),
    ("immediate danger", {"victims": [adult("shelter")], "immediate_danger": True}, True, False),
]


@pytest.mark.parametrize(("who", "facts", "police", "shelter"), CONSENT_ROWS, ids=[r[0] for r in CONSENT_ROWS])
def test_consent_decides_what_a_referral_carries_never_whether_police_are_told(who, facts, police, shelter):
    by_code = {m.code: m for m in match(case(**facts), DIRECTORY, RULES, OFFICE)}
    assert by_code["police-commune-00070"].identity_shared is police  # the police referral is always made
    assert by_code["shelter-01"].identity_shared is shelter
    consent = by_code["police-commune-00070"].trace[-1]
    assert consent.kind is StepKind.consent and consent.ok is police and "law-enforcement unit" in consent.text


# ---- abroad ---------------------------------------------------------------------------------------

def test_abroad_with_a_known_counterpart():
    codes = {m.code for m in match(case(abroad_country="CN"), DIRECTORY, RULES, OFFICE)}
    assert {"consular-department", "counterpart-cn-hekou"} <= codes


def test_abroad_without_a_counterpart_says_so_in_the_trace():
    out = explain(case(abroad_country="TH"), DIRECTORY, RULES, OFFICE)
    assert "consular-department" in {m.code for m in out.matches}
    assert out.unmatched == ("abroad-counterpart",)
    last = steps_of(out, "abroad-counterpart")[-1]
    assert last.kind is StepKind.unmatched and "no counterpart for country TH in the directory" in last.text


# ---- the trace explains everything ----------------------------------------------------------------

BUSY = case(KHANH_HOA, NHA_TRANG, urgency="emergency", at_sea=True, moving_across_border=True, abroad_country="TH",
            victims=[child("medical", "shelter", "psychological", "legal_aid", "documents")])


def test_every_chosen_and_every_skipped_candidate_is_explained():
    out = explain(BUSY, DIRECTORY, RULES, NIGHT)
    chosen = {s.unit for s in out.trace if s.kind is StepKind.chosen}
    assert chosen == {m.code for m in out.matches}
    for m in out.matches:
        assert any(s.kind is StepKind.chosen and s.unit == m.code for s in m.trace)
        assert m.trace[-1].kind is StepKind.consent and set(m.reasons) == set(m.rules)
    for s in out.trace:
        assert s.text
        if s.kind is StepKind.skipped:
            assert s.unit and s.skip
    # Every rule starts with its condition; every rule that held ends in a choice or says it found none.
    for rule in RULES.current.rules:
        steps = steps_of(out, rule.id)
        assert steps[0].kind is StepKind.condition
    assert out.unmatched  # documents, counterpart for TH, … are all named
    for entry in out.unmatched:
        rule = entry.split(":")[0]
        assert any(s.kind is StepKind.unmatched for s in steps_of(out, rule))


def test_matching_is_deterministic_and_accepts_a_mapping():
    a = explain(BUSY, DIRECTORY, RULES, NIGHT)
    b = explain(BUSY.model_dump(mode="json"), DIRECTORY, RULES.current, NIGHT)
    assert [m.code for m in a.matches] == [m.code for m in b.matches]
    assert [str(s) for s in a.trace] == [str(s) for s in b.trace]


# ---- RuleBook -------------------------------------------------------------------------------------

DEFAULT_TEXT = DEFAULT_RULES.read_text(encoding="utf-8")


def write(path: Path, text: str) -> None:
    """Write and move the mtime on, as an editor would (some filesystems keep coarse timestamps)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


@pytest.fixture
def rules_file(tmp_path) -> Path:
    path = tmp_path / "rules.yaml"
    shutil.copy(DEFAULT_RULES, path)
    return path


def test_a_valid_change_swaps_the_rules(rules_file):
    book = RuleBook(rules_file)
    old_version, old_rules = book.version, book.current
    assert book.reload_if_changed() is False  # nothing changed
    write(rules_file, DEFAULT_TEXT.replace("Commune police receive every report", "Commune police hear every report"))
    assert book.reload_if_changed() is True
    assert book.version != old_version and book.current is not old_rules
    assert book.current.rules[0].reason.startswith("Commune police hear")
    assert book.last_error is None and book.loaded_at.tzinfo is not None


def test_touching_without_changing_keeps_the_rules(rules_file):
    book = RuleBook(rules_file)
    rules = book.current
    write(rules_file, DEFAULT_TEXT)
    assert book.reload_if_changed() is False and book.current is rules


BROKEN = [
    ("bad yaml", DEFAULT_TEXT + "\n  - id: [", "not valid YAML"),
    ("unknown key", DEFAULT_TEXT.replace("    emergency_requires_open_now: true",
                                         "    emergency_requires_open_now: true\n    priority: 1"),
     "rules[5].priority: Extra inputs are not permitted"),
    ("unknown kind", DEFAULT_TEXT.replace("kind: police_commune\n", "kind: police_district\n"),
     "rules[0].route.kind: Input should be"),
    ("unknown service", DEFAULT_TEXT.replace("service: child_protection", "service: child_care"),
     "rules[6].route.service: Input should be"),
    ("need without a service", DEFAULT_TEXT.replace("each_need: [medical,", "each_need: [travel_and_meals, medical,"),
     "no directory service is named like need(s) travel_and_meals"),
    ("bad condition", DEFAULT_TEXT.replace("      at_sea: true\n", "      at_sea: yes please\n"),
     "rules[3].when.at_sea: Input should be a valid boolean"),
    ("two keys in a condition",
     DEFAULT_TEXT.replace("      at_sea: true\n", "      at_sea: true\n      violence: true\n"),
     "a condition has exactly one key"),
    ("unknown condition", DEFAULT_TEXT.replace("when: always\n    route:\n      kind: peoples_committee",
                                               "when: sometimes\n    route:\n      kind: peoples_committee"),
     "rules[4].when"),
    ("duplicate id", DEFAULT_TEXT.replace("id: coast-guard", "id: border-guard"), "used twice: border-guard"),
    ("empty file", "", "the file is a mapping"),
]


@pytest.mark.parametrize(("name", "text", "error"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_file_keeps_the_old_rules_and_shows_why(rules_file, name, text, error):
    book = RuleBook(rules_file)
    rules, version = book.current, book.version
    write(rules_file, text)
    assert book.reload_if_changed() is False
    assert book.current is rules and book.version == version
    assert error in book.last_error and str(rules_file) in book.last_error
    assert book.status()["last_error"] == book.last_error and book.last_error_at is not None
    assert book.reload_if_changed() is False  # unchanged broken file: nothing new
    write(rules_file, DEFAULT_TEXT.replace("format: 1", "format: 1  # fixed"))
    assert book.reload_if_changed() is True and book.last_error is None


@pytest.mark.parametrize(("name", "text", "error"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_file_at_first_load_is_a_startup_error(tmp_path, name, text, error):
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as err:
        RuleBook(path)
    assert error in str(err.value)


def test_a_missing_file_is_a_startup_error_and_later_a_shown_error(rules_file):
    with pytest.raises(RulesError, match="cannot read"):
        RuleBook(rules_file.with_name("absent.yaml"))
    book = RuleBook(rules_file)
    rules_file.unlink()
    assert book.reload_if_changed() is False and "cannot read" in book.last_error
    assert book.current.rules


def test_a_refused_file_is_logged(rules_file):
    from structlog.testing import capture_logs

    book = RuleBook(rules_file)
    write(rules_file, "format: 2")
    with capture_logs() as logs:
        book.reload_if_changed()
    assert any(e["event"].startswith("matching rules refused") and e["log_level"] == "error" for e in logs)


def test_match_takes_a_rulebook_or_its_rules():
    assert [m.code for m in match(case(), DIRECTORY, RULES, OFFICE)] == \
           [m.code for m in match(case(), DIRECTORY, RULES.current, OFFICE)]


# ---- validation never fails in an undocumented way ------------------------------------------------

WORDS = st.sampled_from([
    "format", "consent", "rules", "id", "reason", "when", "route", "kind", "at", "fallback", "service", "levels",
    "each_need", "emergency_requires_open_now", "always", "any", "all", "urgency_in", "province_is", "at_sea",
    "child_involved", "abroad", "law_enforcement_kinds", "law_enforcement_identity_when", "others_identity_when",
    "police_commune", "commune", "province", "region", "nation", "abroad_country", "covering_province", "medical",
    "border", "coastal", "high", "emergency", "x",
])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), WORDS, st.text(max_size=8))
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(WORDS, st.integers(0, 2)), inner, max_size=5)),
    max_leaves=40,
)


def _mutations():
    """The default document with one subtree replaced by something arbitrary."""
    base = yaml.safe_load(DEFAULT_TEXT)

    def replace(doc, path, value):
        if not path:
            return value
        doc = doc.copy() if isinstance(doc, dict | list) else doc
        key = path[0]
        if isinstance(doc, list) and isinstance(key, int) and key < len(doc):
            doc[key] = replace(doc[key], path[1:], value)
        elif isinstance(doc, dict):
            doc[key] = replace(doc.get(key), path[1:], value)
        return doc

    paths = st.lists(st.one_of(WORDS, st.integers(0, 10)), max_size=5)
    return st.builds(lambda p, v: replace(base, p, v), paths, DOCS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(DOCS, _mutations()))
def test_validating_any_document_raises_only_rules_error(doc):
    try:
        validate_rules(doc)
    except RulesError as err:
        assert err.problems
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return
    try:
        parse_rules(text)
    except RulesError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"ab:-[]{},#!&*|>'\"\n 1.tr?%@`\té", "2025-13-45", "rules", "  - ", "format: 1",
                                  "!!python/object:os.system", "&a", "*a", "<<: "]), max_size=30).map("".join))
def test_parsing_any_text_raises_only_rules_error(text):
    try:
        parse_rules(text)
    except RulesError as err:
        assert err.problems


def test_deeply_nested_conditions_are_refused_cleanly():
    cond: object = {"at_sea": True}
    for _ in range(3000):
        cond = {"any": [cond]}
    doc = yaml.safe_load(DEFAULT_TEXT)
    doc["rules"][0]["when"] = cond
    with pytest.raises(RulesError):
        validate_rules(doc)
