"""The referral lifecycle as data, outcome checks, and where a declined referral goes next (the engine's
`exclude` over the real directory and rules). Pure Python: no database, no running service."""
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from runtime.problems import Conflict, DomainError
from schemas.events.cases import CaseFacts, VictimSummary
from schemas.events.referrals import ReferralOutcome as O
from schemas.events.referrals import ReferralStatus as S
from services.referral.directory.facts import directory_index
from services.referral.directory.generate import units
from services.referral.matching import DEFAULT_RULES, RuleBook, SkipReason, StepKind, explain, match
from services.referral.referrals import lifecycle
from services.referral.referrals.handlers import _trace
from services.referral.referrals.reroute import next_candidates

OFFICE = datetime(2026, 3, 10, 10, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))  # a Tuesday morning
RULES = RuleBook(DEFAULT_RULES)

# ---- transitions ---------------------------------------------------------------------------------------

ALLOWED = [(S.created, S.notified), (S.created, S.acknowledged), (S.notified, S.acknowledged),
           (S.acknowledged, S.accepted), (S.acknowledged, S.declined), (S.accepted, S.closed)]


@pytest.mark.parametrize(("current", "new"), ALLOWED)
def test_allowed_moves(current, new):
    lifecycle.check(current, new)


@pytest.mark.parametrize(("current", "new"), [(c, n) for c in S for n in S if (c, n) not in ALLOWED])
def test_every_other_move_is_a_409_naming_status_and_saying_why(current, new):
    with pytest.raises(Conflict) as refused:
        lifecycle.check(current, new)
    assert refused.value.status == 409 and refused.value.field == "status"
    detail = refused.value.detail
    if current == new:
        assert detail == f"the referral is already {current}"
    elif current in (S.declined, S.closed):
        assert detail == f"the referral is {current}: nothing more can be done with it"
    else:
        assert detail.startswith(f"a referral cannot go from {current} to {new}; from {current} it can go to ")


def test_each_status_after_created_is_stamped_and_acknowledging_stops_the_timer():
    assert set(lifecycle.STAMP) == set(S) - {S.created}
    assert lifecycle.STOPS_TIMER == {S.acknowledged, S.accepted, S.declined, S.closed}
    assert lifecycle.FINAL == {S.declined, S.closed}
    # every state after acknowledged can only be reached through it (a second link click is harmless)
    reachable_without_ack = {S.created}
    for _ in S:
        reachable_without_ack |= {n for c in reachable_without_ack for n in lifecycle.ALLOWED[c] if n != S.acknowledged}
    assert reachable_without_ack == {S.created, S.notified}


@pytest.mark.parametrize("status", [s for s in S if s != S.accepted])
def test_outcomes_only_on_accepted_referrals(status):
    lifecycle.check_outcome_allowed(S.accepted)
    with pytest.raises(Conflict, match=f"this one is {status}"):
        lifecycle.check_outcome_allowed(status)


@pytest.mark.parametrize(("outcome", "victims", "services", "field"), [
    (O.victims_rescued, None, [], "victims"),
    (O.repatriated, None, [], "victims"),
    (O.victims_supported, 2, [], "services"),
    (O.investigation_opened, None, ["shelter"], "services"),
    (O.not_substantiated, None, ["medical"], "services"),
])
def test_outcome_counts_and_codes_must_fit(outcome, victims, services, field):
    with pytest.raises(DomainError) as refused:
        lifecycle.check_outcome(outcome, victims, services)
    assert refused.value.status == 422 and refused.value.field == field


@pytest.mark.parametrize(("outcome", "victims", "services"), [
    (O.investigation_opened, None, []), (O.victims_rescued, 2, []), (O.victims_supported, None, ["shelter"]),
    (O.victims_supported, 3, ["medical", "legal_aid"]), (O.repatriated, 1, []), (O.not_substantiated, None, []),
])
def test_fitting_outcomes_pass(outcome, victims, services):
    lifecycle.check_outcome(outcome, victims, services)


# ---- re-route: the engine's exclude and the next candidate -------------------------------------------------

@pytest.fixture(scope="module")
def directory():
    return directory_index(units())


def hanoi_case(**facts) -> CaseFacts:
    """Hoàn Kiếm, Hà Nội: normal, an adult needing shelter and medical care."""
    adult = VictimSummary(sex="female", age_band="30-38", is_child=False, needs=["shelter", "medical"])
    return CaseFacts(**{"case_id": uuid.uuid4(), "case_number": "111-2026-000001", "province_code": "01",
                        "commune_code": "00070", "urgency": "normal", "victims": [adult], **facts})


def first_referrals(directory, case):
    return {m.code: m for m in match(case, directory, RULES, OFFICE)}


def replacements(directory, case, declined_code):
    made = first_referrals(directory, case)
    declined = made[declined_code]
    outcome = explain(case, directory, RULES, OFFICE, exclude=frozenset(made))
    return next_candidates(declined.unit, _trace(declined), outcome)


def test_exclude_is_backwards_compatible_and_traced(directory):
    case = hanoi_case()
    assert [m.code for m in match(case, directory, RULES, OFFICE, exclude=frozenset())] == \
        [m.code for m in match(case, directory, RULES, OFFICE)]
    outcome = explain(case, directory, RULES, OFFICE, exclude=frozenset({"police-commune-00070"}))
    (skip,) = [s for s in outcome.trace if s.skip == SkipReason.excluded]
    assert (skip.rule, skip.unit, skip.kind) == ("police-commune", "police-commune-00070", StepKind.skipped)
    assert "police-commune-00070" not in [m.code for m in outcome.matches]


def test_declining_commune_police_goes_up_to_the_province_police(directory):
    (new,) = replacements(directory, hanoi_case(), "police-commune-00070")
    assert (new.code, new.rules) == ("police-province-01", ("police-commune",))
    assert set(new.reasons) == {"police-commune"} and "falling back" in new.reasons["police-commune"]


def test_declining_a_support_unit_replaces_only_the_need_it_served(directory):
    case = hanoi_case()
    made = first_referrals(directory, case)
    shelter = next(m for m in made.values() if "shelter" in m.needs)
    news = replacements(directory, case, shelter.code)
    assert news, "another unit offers shelter in Hà Nội or its region"
    for new in news:
        assert new.code not in made and new.rules == ("support-needs",)
        chosen_for = {s.need for s in new.trace if s.kind is StepKind.chosen and s.unit == new.code}
        assert "shelter" in chosen_for and new.unit.level in ("province", "region")


def test_nobody_is_left_when_the_only_candidate_declines(directory):
    # the commune People's Committee has no fallback
    assert replacements(directory, hanoi_case(), "peoples-committee-00070") == []


def test_the_province_police_already_having_the_case_leaves_nobody_for_the_commune_police(directory):
    case = hanoi_case(urgency="high")  # high: the provincial police are referred directly too
    assert "police-province-01" in first_referrals(directory, case)
    assert replacements(directory, case, "police-commune-00070") == []
