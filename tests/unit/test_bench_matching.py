"""The case mix of `python -m bench matching` (bench/matching_mix.py): what it feeds referral must be
what intake would send, over the whole map. No stack: pure Python, about a second."""
from collections import Counter

import pytest

from bench.matching import FOCUS, by_fifth
from bench.profile import focus
from bench.matching_mix import case_mix, record, records
from runtime.cloudevents import decode
from schemas import event_spec_for_model
from schemas.events.cases import CaseReported
from schemas.geography import communes
from services.referral.directory.facts import border_countries, coastal_provinces

N = len(communes())  # 3,321: one full rotation


@pytest.fixture(scope="module")
def rotation() -> list[CaseReported]:
    return [c for c, _ in zip(case_mix(), range(N), strict=False)]


def test_one_rotation_visits_every_commune_once_in_its_province(rotation):
    assert Counter(c.commune_code for c in rotation) == Counter(list(communes()))
    assert all(communes()[c.commune_code][1] == c.province_code for c in rotation)
    assert len({c.case_id for c in rotation}) == N
    assert len({c.case_number for c in rotation}) == N


def test_records_are_cloudevents_intake_would_send(rotation):
    spec = event_spec_for_model(CaseReported)
    for case, (key, value, headers) in zip(rotation, records(rotation), strict=True):
        envelope = decode(headers, value)  # what referral's consumer does first
        assert envelope.type == spec.type and envelope.source == "/hotline111/intake"
        assert key == str(case.case_id).encode()
        assert CaseReported.model_validate_json(envelope.data) == case
    assert spec.topic == "intake.cases.v1"
    assert len({decode(h, v).id for _k, v, h in (record(c) for c in rotation[:50])}) == 50  # fresh event ids


def test_the_mix_has_every_kind_of_case_and_only_coherent_ones(rotation):
    coastal, borders = coastal_provinces(), border_countries()
    urgency = Counter(c.urgency for c in rotation)
    assert {u: urgency[u] / N > share for u, share in (("normal", 0.5), ("high", 0.2), ("emergency", 0.05))} == {
        "normal": True, "high": True, "emergency": True}
    at_sea = [c for c in rotation if c.at_sea]
    abroad = [c for c in rotation if c.abroad_country]
    moving = [c for c in rotation if c.moving_across_border]
    children = [c for c in rotation if any(v.is_child and v.needs for v in c.victims)]
    assert at_sea and abroad and moving and children
    assert all(c.province_code in coastal and c.abroad_country is None for c in at_sea)
    assert {c.abroad_country for c in abroad} >= {"CN", "LA", "KH", "TH"}  # TH has no counterpart
    assert all(c.destination_country in borders.get(c.province_code, ("CN",)) for c in moving)
    assert all(c.child_involved for c in children)
    assert all(c.victims for c in rotation)
    assert all(c.child_involved == any(v.is_child for v in c.victims) for c in rotation)


def test_the_same_seed_and_start_give_the_same_facts():
    def facts(seed: int, start: int) -> list[dict]:
        return [c.model_dump(exclude={"case_id"}) for c, _ in zip(case_mix(seed, start), range(200), strict=False)]

    assert facts(111, 0) == facts(111, 0)
    assert facts(111, 0) != facts(112, 0)
    assert [f["commune_code"] for f in facts(111, 5)] == [f["commune_code"] for f in facts(111, 0)][5:] + [
        f["commune_code"] for f in facts(111, 200)][:5]


def test_focus_counts_samples_by_what_the_code_does(tmp_path):
    raw = tmp_path / "stacks.txt"
    raw.write_text(
        "_run_module_as_main (<frozen runpy>:1);refer (services/referral/referrals/handlers.py:53);"
        "match (services/referral/matching/engine.py:74);explain (services/referral/matching/engine.py:80) 3\n"
        "_run_module_as_main (<frozen runpy>:1);OutboxRelay.run (runtime/relay.py:36) 1\n"
        "Session.execute (sqlalchemy/orm/session.py:2488) 4\n"
    )
    shares = {x["what"]: x["pct"] for x in focus(raw, FOCUS)}
    assert shares["matching engine: match() / explain()"] == 37.5
    assert shares["outbox relay (OutboxRelay.run)"] == 12.5
    assert shares["statements in greenlets (callers cut off)"] == 50.0


def test_by_fifth_rates_each_fifth_of_a_batch_from_the_polls():
    polls = [(1.0, 20), (2.0, 40), (3.0, 60), (5.0, 80), (6.0, 100)]
    assert by_fifth(polls, 100) == [20.0, 20.0, 20.0, 10.0, 20.0]
    assert by_fifth(polls[:3], 100) == [20.0, 20.0, 20.0, None, None]  # the batch never finished
