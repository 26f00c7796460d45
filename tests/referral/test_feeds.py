"""Agency feeds over the running stack: each organisation's system reads, on its own topic, the referrals
to its units and nothing else, with only the fields its contract allows, and sees them change.

Điện Biên is a land-border province (China, Laos) that no other stack test reports in."""
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator

from schemas.catalog import CATALOG, event_spec_for_type
from schemas.events.cases import CaseFacts
from schemas.events.feeds import ConsularReferral, FeedReferral, FeedVictim, LawEnforcementReferral
from schemas.feeds import FEEDS, feed_for_kind
from schemas.events.referrals import ReferralEscalated, ReferralOutcomeRecorded, ReferralReminder, ReferralStatusChanged
from schemas.geography import communes
from services.referral.directory.model import Level, Unit, UnitKind
from services.referral.feeds.messages import feed_message
from tests.referral.test_lifecycle import Agency, events_of, staff
from tests.support import eventually, read_topic

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "jsonschema"
DIEN_BIEN = "11"
COMMUNE = min(c for c, (_, p) in communes().items() if p == DIEN_BIEN)
TOPIC = {f.id: f.topic for f in FEEDS}


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def feed(stack, feed_id: str, case_id: str, count: int = 0) -> list[dict]:
    """The feed's payloads about the case, once `count` have arrived; each checked against its schema."""
    async def arrived():
        records = [r for r in await read_topic(stack.bootstrap, TOPIC[feed_id], 0)
                   if r.key and r.key.decode() == case_id]
        return records if len(records) >= count else None

    out = []
    for record in await eventually(arrived, 30, interval=0.5) if count else await arrived():
        ce_type = dict(record.headers)["ce_type"].decode()
        assert event_spec_for_type(ce_type).topic == TOPIC[feed_id]
        payload = json.loads(record.value)
        schema = Draft202012Validator(json.loads((SCHEMAS / f"{ce_type}.json").read_text()))
        assert not [e.message for e in schema.iter_errors(payload)], ce_type
        out.append(payload)
    return out


async def report(http, stack, **facts) -> dict:
    r = await http.post(f"{stack.url('intake')}/cases", headers=staff(stack), json={
        "province_code": DIEN_BIEN, "channel": "phone", **facts})
    assert r.status_code == 201, r.text
    return r.json()


def test_every_feed_has_its_own_topic_reader_and_unit_kinds():
    kinds = [k for f in FEEDS for k in f.unit_kinds]
    assert len(kinds) == len(set(kinds)), "a unit kind belongs to two organisations"
    assert set(kinds) <= {k.value for k in UnitKind}
    assert len({f.topic for f in FEEDS}) == len({f.reader for f in FEEDS}) == len(FEEDS)
    for f in FEEDS:
        topic = CATALOG.topic(f.topic)
        assert topic.readers == (f.reader,) and topic.consumers == () and not topic.dead_letters
        (spec,) = CATALOG.events_on(f.topic)
        assert spec.model is f.payload and issubclass(f.payload, FeedReferral)
    assert feed_for_kind("peoples_committee") is None and feed_for_kind("hospital") is None


def test_the_contracts_leave_out_what_an_organisation_may_not_see():
    consular, police = set(ConsularReferral.model_fields), set(LawEnforcementReferral.model_fields)
    assert {"means_of_control", "recruitment_channel", "exploitation"} <= police - consular
    assert "needs" in consular - police
    unit = {"unit_name", "unit_code", "unit_kind"}  # the agency's own unit, not a person
    for model in (ConsularReferral, LawEnforcementReferral, FeedVictim):
        for field in set(model.model_fields) - unit:
            assert not any(word in field for word in ("name", "phone", "note", "narrative", "contact", "address",
                                                      "description", "ethnicity")), f"{model.__name__}.{field}"


async def test_a_border_case_reaches_the_police_and_border_guard_feeds_only(http, stack):
    case = await report(http, stack, commune_code=COMMUNE, immediate_danger=True, moving_across_border=True,
                        destination_country="CN", exploitation=["sexual_exploitation"],
                        means_of_control=["threats"],
                        victims=[{"sex": "female", "age": 16, "needs": ["medical"]}])
    law = {f for f in FEEDS if f.id in ("police", "border-guard")}

    async def all_fed():
        created = [p for t, p in await events_of(stack, case["id"], 4) if t == "referral.created"]
        wanted = {p["referral_id"] for p in created if feed_for_kind(p["agency_kind"]) in law}
        fed = await feed(stack, "police", case["id"], 2) + await feed(stack, "border-guard", case["id"], 1)
        return fed if {m["referral_id"] for m in fed} == wanted else None

    fed = await eventually(all_fed, 60, interval=0.5)
    assert {m["unit_kind"] for m in fed} >= {"police_commune", "police_province", "border_guard_province"}
    assert "peoples_committee" not in {m["unit_kind"] for m in fed}
    assert await feed(stack, "coast-guard", case["id"]) == []  # not at sea: nothing to the Coast Guard
    police = [m for m in fed if m["unit_kind"].startswith("police")]

    first = police[0]
    assert set(first) == set(LawEnforcementReferral.model_fields)  # exactly the contract, nothing more
    assert (first["change"], first["status"], first["case_number"]) == ("referred", "created", case["case_number"])
    assert (first["immediate_danger"], first["child_involved"], first["moving_across_border"]) == (True, True, True)
    assert first["victims"] == [{"sex": "female", "age_band": "9-17", "is_child": True, "nationality": None}]
    assert first["means_of_control"] == ["threats"] and first["commune_code"] == COMMUNE
    assert first["identity_shared"] is True  # a child: the consent policy shares identity with law enforcement

    # the commune police acknowledge: their feed follows
    mine = next(m for m in police if m["unit_kind"] == "police_commune")
    agency = Agency(http, stack, mine["unit_code"])
    etag = (await agency.get(mine["referral_id"])).headers["etag"]
    assert (await agency.act(mine["referral_id"], "acknowledge", etag)).status_code == 200
    later = await feed(stack, "police", case["id"], len(police) + 1)
    moved = [m for m in later if m["referral_id"] == mine["referral_id"] and m["change"] == "status-changed"]
    assert moved and moved[-1]["status"] == "acknowledged"


async def test_a_case_abroad_reaches_the_consular_feed_without_law_enforcement_facts(http, stack):
    case = await report(http, stack, abroad_country="KH", means_of_control=["debt_bondage"],
                        victims=[{"sex": "male", "age": 30, "nationality": "VN", "needs": ["documents", "shelter"]}])
    messages = await feed(stack, "consular", case["id"], 1)
    message = messages[0]
    assert message["change"] == "referred"
    assert [(m["change"], m["status"]) for m in messages[1:]] in ([], [("status-changed", "notified")])
    assert set(message) == set(ConsularReferral.model_fields)
    assert (message["abroad_country"], message["needs"]) == ("KH", ["documents", "shelter"])
    assert "means_of_control" not in message and "exploitation" not in message
    assert message["victims"] == [{"sex": "male", "age_band": "30-38", "is_child": False, "nationality": "VN"}]


# ---- each referral event, as a feed message (no stack needed) -----------------------------------------------

def _unit(kind: str):
    return Unit(id=uuid.uuid4(), code=f"{kind}-x", name="Unit X", kind=UnitKind(kind), level=Level.province,
                province_code=DIEN_BIEN)


@pytest.mark.parametrize("change", ["reminded", "escalated", "outcome-recorded", "status-changed"])
def test_every_referral_event_becomes_the_referrals_state_with_its_change(change):
    t0 = datetime(2026, 11, 24, 3, tzinfo=UTC)
    unit = _unit("border_post")
    ids = {"referral_id": uuid.uuid4(), "case_id": uuid.uuid4(), "case_number": "111-2026-000001",
           "agency_unit_id": unit.id}
    event = {
        "reminded": ReferralReminder(**ids, agency_unit_name=unit.name, urgency="high", acknowledge_by=t0,
                                     escalate_at=t0 + timedelta(minutes=30), contacts=[]),
        "escalated": ReferralEscalated(**ids, to_level="province", escalated_at=t0 + timedelta(hours=1)),
        "outcome-recorded": ReferralOutcomeRecorded(**ids, agency_kind="border_post", province_code=DIEN_BIEN,
                                                    outcome="victims_rescued", victims=2, recorded_at=t0),
        "status-changed": ReferralStatusChanged(**ids, from_status="notified", to_status="declined", via="agency_api",
                                                decline_reason="no_capacity", changed_at=t0),
    }[change]
    row = {"status": "declined" if change == "status-changed" else "notified", "urgency": "high",
           "province_code": DIEN_BIEN, "acknowledge_by": t0, "identity_shared": False,
           "decline_reason": "no_capacity" if change == "status-changed" else None,
           "created_at": t0 - timedelta(hours=2), "reminded_at": t0 if change == "reminded" else None}
    facts = CaseFacts(case_id=ids["case_id"], case_number="111-2026-000001", province_code=DIEN_BIEN,
                      urgency="high", at_sea=False, moving_across_border=True, destination_country="LA",
                      victims=[{"sex": "female", "age_band": "21-23", "is_child": False, "needs": ["medical"]}])
    message = feed_message(feed_for_kind("border_post"), event, unit, row, facts)
    assert type(message).__name__ == "BorderGuardReferral" and message.change == change
    assert (message.unit_code, message.status, message.destination_country) == (unit.code, row["status"], "LA")
    assert "needs" not in message.model_dump()
    expected = {"reminded": ("escalate_at", t0 + timedelta(minutes=30)),
                "escalated": ("escalated_to_level", "province"), "outcome-recorded": ("outcome_victims", 2),
                "status-changed": ("decline_reason", "no_capacity")}
    field, value = expected[change]
    assert getattr(message, field) == value
