"""A case follows its referrals by events: an accepted referral moves a referred case in progress, as an
operator's change would (version, ETag, case.status-changed), and the case detail shows each referral's unit,
status and outcomes.

The happy path runs through the real referral service and an agency's API. Late, out-of-order and redelivered
events are produced onto referral.referrals.v1 by the test itself, about real cases; only status-changed and
outcome-recorded are produced that way, which no service but intake consumes (notify and reporting take
referral.created alone)."""
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from schemas.events.referrals import ReferralOutcomeRecorded, ReferralStatusChanged
from tests.intake.test_cases import create, if_match
from tests.intake.test_events import records_about, validator
from tests.support import envelope_headers, eventually, produce

TOPIC = "referral.referrals.v1"
GIANG_VO = {"province_code": "01", "commune_code": "00025", "channel": "phone",  # used by no other test
            "victims": [{"sex": "male", "age": 35}]}
SUMMARY = {"referral_id", "agency_unit_id", "agency_unit_name", "agency_kind", "status", "decline_reason",
           "outcomes", "updated_at"}


async def detail_when(api, case_id: str, check, timeout: float = 60) -> dict:
    async def found():
        now = (await api.get(f"/cases/{case_id}")).json()
        return now if check(now) else None

    return await eventually(found, timeout, interval=0.2)


def referral_in(case: dict, referral_id) -> dict | None:
    return next((r for r in case["referrals"] if r["referral_id"] == str(referral_id)), None)


async def referred_case(api) -> tuple[dict, dict]:
    """A new case once referral has referred it, and one of its referrals as intake shows it."""
    case = (await create(api, GIANG_VO)).json()
    now = await detail_when(api, case["id"], lambda c: c["status"] == "referred" and c["referrals"])
    return now, now["referrals"][0]


def moved(case: dict, unit_id, referral_id, frm: str, to: str, at: datetime, **kw) -> ReferralStatusChanged:
    return ReferralStatusChanged(referral_id=referral_id, case_id=case["id"], case_number=case["case_number"],
                                 agency_unit_id=unit_id, from_status=frm, to_status=to, via="agency_api",
                                 changed_at=at, **kw)


def outcome(case: dict, unit_id, referral_id, what: str, at: datetime, **kw) -> ReferralOutcomeRecorded:
    return ReferralOutcomeRecorded(referral_id=referral_id, case_id=case["id"], case_number=case["case_number"],
                                   agency_unit_id=unit_id, agency_kind="police_commune", province_code="01",
                                   outcome=what, recorded_at=at, **kw)


async def publish(stack, *events) -> None:
    """(payload, event id) pairs onto the topic, keyed by case like referral's own, so in this order."""
    await produce(stack.bootstrap, TOPIC, [
        (str(e.case_id).encode(), e.model_dump_json().encode(), envelope_headers(e, event_id=event_id))
        for e, event_id in events])


async def status_events(stack, case_id: str, at_least: int) -> list[dict]:
    """The case's case.status-changed payloads, once intake published `at_least` events about it."""
    records = await records_about(stack, "intake.cases.v1", case_id, at_least)
    return [json.loads(r.value) for r in records if dict(r.headers)["ce_type"].endswith(b".status-changed.v1")]


async def test_an_agency_accepting_moves_the_case_in_progress_like_an_operator_would(stack, operator, client):
    answer = (await create(operator, GIANG_VO)).json()
    assert "referrals" not in answer  # only the detail carries them
    # Delivery of the alerts reaches intake too: every referral shows notified.
    case = await detail_when(operator, answer["id"], lambda c: c["status"] == "referred" and c["referrals"]
                             and all(r["status"] == "notified" for r in c["referrals"]))
    assert set(case) == set(answer) | {"referrals"} and case["version"] == 2
    for r in case["referrals"]:
        assert set(r) == SUMMARY and r["agency_unit_name"] and r["agency_kind"] and r["outcomes"] == []
    assert {r["agency_kind"] for r in case["referrals"]} >= {"police_commune"}

    units = (await client.get(f"{stack.url('referral')}/agency-units",
                              params={"province_code": "01", "limit": 1000})).json()
    code_of = {u["id"]: u["code"] for u in units}
    police = next(r for r in case["referrals"] if r["agency_kind"] == "police_commune")
    token = stack.token("agency", sub="giang-vo", agency_units=[code_of[police["agency_unit_id"]]])
    agency = f"{stack.url('referral')}/agency/referrals/{police['referral_id']}"
    headers = {"Authorization": f"Bearer {token}"}

    async def act(action: str, body=None):
        etag = (await client.get(agency, headers=headers)).headers["etag"]
        r = await client.post(f"{agency}/{action}", json=body, headers={**headers, "If-Match": etag})
        assert r.status_code in (200, 201), r.text

    await act("acknowledge")
    assert (await operator.get(f"/cases/{case['id']}")).json()["status"] == "referred"  # acknowledging is not taking
    await act("accept")
    path = f"/cases/{case['id']}"
    now = await detail_when(operator, case["id"], lambda c: c["status"] == "in_progress")
    assert now["version"] == 3 and (await operator.get(path)).headers["etag"] == '"3"'
    assert referral_in(now, police["referral_id"])["status"] == "accepted"

    # reported, referred, in progress
    changes = [p for p in await status_events(stack, case["id"], 3) if p["to_status"] == "in_progress"]
    assert [(p["from_status"], p["version"], p["outcome"]) for p in changes] == [("referred", 3, None)]
    assert not list(validator("vn.hotline111.case.status-changed.v1").iter_errors(changes[0]))

    await act("outcomes", {"outcome": "victims_rescued", "victims": 2})
    rescued = await detail_when(operator, case["id"], lambda c: referral_in(c, police["referral_id"])["outcomes"])
    assert [(o["outcome"], o["victims"], o["services"]) for o in referral_in(rescued, police["referral_id"])[
        "outcomes"]] == [("victims_rescued", 2, [])]
    assert rescued["version"] == 3  # a referral's progress is not a change to the case's facts
    closed = await operator.post(f"{path}/status", json={"status": "closed", "outcome": "rescued"},
                                 headers=if_match(3))
    assert closed.status_code == 200 and closed.headers["etag"] == '"4"'


@pytest.mark.parametrize("how", ["closed", "merged"])
async def test_an_accepted_referral_leaves_a_closed_or_merged_case_as_it_is(stack, operator, as_role, how):
    case, referral = await referred_case(operator)
    path = f"/cases/{case['id']}"
    if how == "closed":
        r = await operator.post(f"{path}/status", json={"status": "closed", "outcome": "assisted"},
                                headers=if_match(2))
    else:
        survivor = (await create(operator)).json()
        r = await as_role("supervisor", sub="sup-follow").post(
            f"{path}/merge", json={"into_case_id": survivor["id"]}, headers=if_match(2))
    assert r.status_code == 200, r.text

    at = datetime.now(UTC)
    await publish(stack, (moved(case, referral["agency_unit_id"], referral["referral_id"], "acknowledged",
                                "accepted", at), uuid.uuid4()))
    now = await detail_when(operator, case["id"],
                            lambda c: referral_in(c, referral["referral_id"])["status"] == "accepted")
    assert (now["status"], now["version"]) == ("closed", 3)


async def test_late_status_events_never_move_a_referral_backwards(stack, operator):
    case, real = await referred_case(operator)
    unit, rid, marker = real["agency_unit_id"], uuid.uuid4(), uuid.uuid4()
    t0 = datetime.now(UTC)
    await publish(
        stack,
        (moved(case, unit, rid, "acknowledged", "declined", t0 + timedelta(minutes=3),
               decline_reason="no_capacity"), uuid.uuid4()),
        (moved(case, unit, rid, "notified", "acknowledged", t0 + timedelta(minutes=2)), uuid.uuid4()),  # late
        (moved(case, unit, rid, "created", "notified", t0 + timedelta(minutes=1)), uuid.uuid4()),  # later still
        (moved(case, unit, marker, "created", "notified", t0), uuid.uuid4()),  # once seen, all above were
    )
    now = await detail_when(operator, case["id"], lambda c: referral_in(c, marker))
    declined = referral_in(now, rid)
    assert (declined["status"], declined["decline_reason"]) == ("declined", "no_capacity")
    assert datetime.fromisoformat(declined["updated_at"]) == t0 + timedelta(minutes=3)
    assert declined["agency_unit_name"] is None  # referral.created of it was never seen
    assert (now["status"], now["version"]) == ("referred", 2)  # a decline leaves the case with the hotline


async def test_outcomes_are_appended_once_and_a_redelivery_changes_nothing(stack, operator):
    case, real = await referred_case(operator)
    unit, rid, other = real["agency_unit_id"], uuid.uuid4(), uuid.uuid4()
    t0 = datetime.now(UTC)
    accepted = (moved(case, unit, rid, "acknowledged", "accepted", t0), uuid.uuid4())
    opened = (outcome(case, unit, rid, "investigation_opened", t0 + timedelta(minutes=1)), uuid.uuid4())
    supported = (outcome(case, unit, rid, "victims_supported", t0 + timedelta(minutes=2),
                         services=["shelter", "medical"]), uuid.uuid4())
    await publish(stack, accepted, opened, supported, accepted, opened,  # the same events, delivered again
                  (moved(case, unit, rid, "notified", "acknowledged", t0 - timedelta(minutes=1)), uuid.uuid4()),
                  (moved(case, unit, other, "acknowledged", "accepted", t0 + timedelta(minutes=3)), uuid.uuid4()))
    now = await detail_when(operator, case["id"], lambda c: referral_in(c, other))
    mine = referral_in(now, rid)
    assert mine["status"] == "accepted"
    assert [(o["outcome"], o["victims"], o["services"]) for o in mine["outcomes"]] == [
        ("investigation_opened", None, []), ("victims_supported", None, ["shelter", "medical"])]
    # One move for the first acceptance; neither the redelivery nor a second unit accepting moves it again.
    assert (now["status"], now["version"]) == ("in_progress", 3)
    moves = [(p["from_status"], p["to_status"]) for p in await status_events(stack, case["id"], 3)]
    assert moves == [("open", "referred"), ("referred", "in_progress")]
