"""Cases over the running intake and real PostgreSQL: facts, urgency floor, lifecycle, concurrency."""
import asyncio
import re

import pytest

from tests.support import eventually

FULL_CASE = {
    "province_code": "01", "commune_code": "00070", "channel": "phone",
    "victims": [{"name": "Lò Thị D", "sex": "female", "age": 16, "nationality": "VN", "ethnicity": "Thái",
                 "needs": ["shelter", "psychological"]},
                {"sex": "female", "age_band": "21-23"}],
    "traffickers": [{"description": "man called Tuan with a scar", "role": "recruiter", "relationship": "friend"}],
    "exploitation": ["forced_marriage"], "means_of_control": ["withholds_documents", "restricts_movement"],
    "recruitment_channel": "zalo", "moving_across_border": True, "destination_country": "CN",
    "narrative": "Called from a bus near Lào Cai",
}


async def create(api, body=None, **headers):
    r = await api.post("/cases", json=body or {"province_code": "01"}, headers=headers)
    assert r.status_code in (200, 201), r.text
    return r


async def settled(api, case: dict) -> dict:
    """The case once referral has referred it: intake then moves it to `referred` by itself, which
    changes its version. Tests that send If-Match start from here."""
    async def referred():
        now = (await api.get(f"/cases/{case['id']}")).json()
        return now if now["status"] == "referred" else None

    return await eventually(referred, 30)


def if_match(version: int) -> dict:
    return {"If-Match": f'"{version}"'}


async def test_full_case_is_recorded_without_personal_data_in_the_answer(operator):
    r = await create(operator, FULL_CASE)
    case = r.json()
    assert r.headers["etag"] == '"1"'
    assert case["child_victim"] and case["urgency"] == "emergency"  # moving across a border now
    assert [v["age_band"] for v in case["victims"]] == ["9-17", "21-23"]
    assert [v["is_child"] for v in case["victims"]] == [True, False]
    assert "Lò" not in r.text and "Tuan" not in r.text and "bus" not in r.text and "Thái" not in r.text


@pytest.mark.parametrize(("facts", "floor"), [
    ({}, "normal"),
    ({"child_victim": True}, "high"),
    ({"victims": [{"age": 12}]}, "high"),
    ({"violence": True}, "high"),
    ({"immediate_danger": True}, "emergency"),
    ({"moving_across_border": True}, "emergency"),
])
async def test_urgency_floor_follows_the_facts(operator, facts, floor):
    case = (await create(operator, {"province_code": "01", **facts})).json()
    assert (case["urgency_floor"], case["urgency"]) == (floor, floor)


async def test_lowering_below_the_floor_needs_a_reason(operator):
    r = await operator.post("/cases", json={"province_code": "01", "violence": True, "urgency": "normal"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "urgency"
    ok = await create(operator, {"province_code": "01", "violence": True, "urgency": "normal",
                                 "urgency_reason": "the violence was years ago; person is safe now"})
    assert (ok.json()["urgency"], ok.json()["urgency_floor"]) == ("normal", "high")


async def test_raising_above_the_floor_is_free(operator):
    case = (await create(operator, {"province_code": "01", "urgency": "emergency"})).json()
    assert (case["urgency"], case["urgency_floor"]) == ("emergency", "normal")


async def test_idempotency_replays_and_refuses_a_different_body(operator):
    body = {"province_code": "46"}
    first = await operator.post("/cases", json=body, headers={"Idempotency-Key": "k-1"})
    again = await operator.post("/cases", json=body, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    other = await operator.post("/cases", json={"province_code": "48"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_concurrent_twins_with_one_key_make_one_case(operator):
    body = {"province_code": "01", "commune_code": "00070", "victims": [{"name": "Twin Case", "age": 30}]}
    answers = await asyncio.gather(*(
        operator.post("/cases", json=body, headers={"Idempotency-Key": "twin-1"}) for _ in range(6)))
    assert sorted(r.status_code for r in answers) == [200] * 5 + [201], [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1 and len({r.json()["case_number"] for r in answers}) == 1
    assert re.fullmatch(r"111-\d{4}-\d{6}", answers[0].json()["case_number"])
    # The twins did not even flag one another: there is only one case.
    assert (await operator.get(f"/cases/{answers[0].json()['id']}")).status_code == 200


async def test_update_needs_if_match_and_refuses_a_stale_one(operator):
    case = await settled(operator, (await create(operator)).json())
    path, v = f"/cases/{case['id']}", case["version"]
    assert (await operator.patch(path, json={"violence": True})).status_code == 428
    first = await operator.patch(path, json={"violence": True}, headers=if_match(v))
    assert first.status_code == 200 and first.headers["etag"] == f'"{v + 1}"'
    assert first.json()["urgency"] == "high"  # worse facts raise the urgency by themselves
    stale = await operator.patch(path, json={"at_sea": True}, headers=if_match(v))
    assert stale.status_code == 412 and stale.json()["errors"][0]["field"] == "If-Match"
    assert (await operator.get(path)).json()["at_sea"] is False  # nothing was overwritten


async def test_update_replaces_victims_and_checks_commune_against_province(operator):
    case = await settled(operator, (await create(operator, FULL_CASE)).json())
    path, v = f"/cases/{case['id']}", case["version"]
    r = await operator.patch(path, json={"victims": [{"age": 30}]}, headers=if_match(v))
    assert [victim["age_band"] for victim in r.json()["victims"]] == ["30-38"]
    bad = await operator.patch(path, json={"commune_code": "26734"}, headers=if_match(v + 1))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "commune_code"


async def test_lifecycle_with_outcome_and_supervisor_reopen(operator, as_role):
    case = await settled(operator, (await create(operator)).json())  # referral referred it: v2
    path, v = f"/cases/{case['id']}", case["version"]

    async def move(api, version, **body):
        return await api.post(f"{path}/status", json=body, headers=if_match(version))

    assert (await move(operator, v, status="in_progress")).status_code == 200
    sideways = await move(operator, v + 1, status="referred")
    assert sideways.status_code == 422 and sideways.json()["errors"][0]["field"] == "status"
    no_outcome = await move(operator, v + 1, status="closed")
    assert no_outcome.status_code == 422 and no_outcome.json()["errors"][0]["field"] == "outcome"
    closed = await move(operator, v + 1, status="closed", outcome="assisted")
    assert (closed.json()["status"], closed.json()["outcome"]) == ("closed", "assisted")
    assert (await move(operator, v + 2, status="open")).status_code == 403
    reopened = await move(as_role("supervisor", sub="sup-1"), v + 2, status="open")
    assert reopened.status_code == 200 and reopened.json()["outcome"] is None
    backwards = await move(operator, v + 3, status="closed", outcome="duplicate")
    assert backwards.status_code == 200


async def test_list_filters_and_cursor_pagination(as_role):
    api = as_role("operator", sub="op-pages")
    made = [(await create(api, {"province_code": "22", "urgency": "high"})).json()["id"] for _ in range(5)]
    await create(api, {"province_code": "22"})
    seen, cursor = [], None
    while True:
        params = {"province_code": "22", "urgency": "high", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/cases", params=params)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(made))
    assert (await api.get("/cases", params={"cursor": "garbage!"})).status_code == 422


async def test_patching_urgency_follows_the_same_floor_rule(operator):
    case = await settled(operator, (await create(operator, {"province_code": "01", "child_victim": True})).json())
    path, v = f"/cases/{case['id']}", case["version"]
    low = await operator.patch(path, json={"urgency": "normal"}, headers=if_match(v))
    assert low.status_code == 422 and low.json()["errors"][0]["field"] == "urgency"
    up = await operator.patch(path, json={"urgency": "emergency"}, headers=if_match(v))
    assert (up.status_code, up.json()["urgency"]) == (200, "emergency")
    reasoned = await operator.patch(path, json={"urgency": "normal", "urgency_reason": "child is now safe at home"},
                                    headers=if_match(v + 1))
    assert (reasoned.json()["urgency"], reasoned.json()["urgency_floor"]) == ("normal", "high")


async def test_null_clears_a_fact_but_never_the_province(operator):
    case = await settled(operator, (await create(operator, {"province_code": "01", "violence": True, "at_sea": True,
                                                            "exploitation": ["forced_labour"]})).json())
    path, v = f"/cases/{case['id']}", case["version"]
    no_province = await operator.patch(path, json={"province_code": None}, headers=if_match(v))
    assert no_province.status_code == 422 and no_province.json()["errors"][0]["field"] == "province_code"
    cleared = await operator.patch(path, json={"violence": None, "at_sea": None, "exploitation": None},
                                   headers=if_match(v))
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["violence"], cleared.json()["at_sea"], cleared.json()["exploitation"]) == (False, False, [])
    # The floor drops with the facts, but the urgency a worse fact raised stays until someone lowers it.
    assert (cleared.json()["urgency_floor"], cleared.json()["urgency"]) == ("normal", "high")
