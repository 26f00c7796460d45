"""Contacts: every call counts, with its rules, repeat callers and attachment to cases."""
from datetime import UTC, datetime, timedelta

import pytest

from tests.intake.test_cases import create
from tests.support import eventually


def call(**over) -> dict:
    start = datetime.now(UTC) - timedelta(minutes=10)
    return {"channel": "phone", "contact_type": "consultation", "consultation_topics": ["victims_rights"],
            "consultation_given": ["information"], "started_at": start.isoformat(),
            "ended_at": (start + timedelta(minutes=4)).isoformat(), "caller_role": "relative_or_friend",
            "caller_sex": "female", "caller_age_band": "30-38"} | over


async def test_a_consultation_without_a_case_is_recorded(operator):
    r = await operator.post("/contacts", json=call())
    assert r.status_code == 201, r.text
    assert (r.json()["duration_s"], r.json()["case_id"]) == (240, None)


async def test_repeat_callers_are_recognised_by_number_in_any_format(as_role):
    api = as_role("operator", sub="op-repeat")
    first = await api.post("/contacts", json=call(caller_phone="0987 654 321"))
    again = await api.post("/contacts", json=call(caller_phone="+84-987-654-321"))
    assert first.json()["earlier_contacts_from_number"] == 0
    assert again.json()["earlier_contacts_from_number"] == 1
    assert "987" not in again.text


@pytest.mark.parametrize(("over", "field"), [
    ({"contact_type": "non_case"}, "non_case_reason"),
    ({"non_case_reason": "prank"}, "non_case_reason"),
    ({"ended_at": "2020-01-01T00:00:00Z"}, "ended_at"),
    ({"started_at": "2999-01-01T00:00:00Z"}, "started_at"),
    ({"consultation_topics": []}, "consultation_topics"),
    ({"consent_callback": True}, "consent_callback"),
    ({"caller_phone": "12"}, "caller_phone"),
    ({"contact_type": "follow_up"}, "case_id"),
    ({"caller_province_code": "01", "caller_commune_code": "26734"}, "caller_commune_code"),
    ({"caller_age_band": "200+"}, "caller_age_band"),
    ({"notes": "x" * 5001}, "notes"),
    ({"language": "vietnamese"}, "language"),
])
async def test_invalid_contacts_are_refused_naming_the_field(operator, over, field):
    r = await operator.post("/contacts", json=call(**over))
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]


async def test_contact_becomes_a_case_and_later_contacts_attach(operator):
    first = (await operator.post("/contacts", json=call(contact_type="information_report",
                                                        consent_share_identity=True))).json()
    case = (await create(operator, {"province_code": "01", "contact_id": first["id"]})).json()
    assert case["consent_share_identity"] is True
    again = await operator.post("/cases", json={"province_code": "01", "contact_id": first["id"]})
    assert again.status_code == 409
    follow = (await operator.post("/contacts", json=call(contact_type="follow_up", case_id=case["id"]))).json()
    later = (await operator.post("/contacts", json=call())).json()
    attached = await operator.post(f"/contacts/{later['id']}/attach", json={"case_id": case["id"]})
    assert attached.json()["case_id"] == case["id"]
    listed = (await operator.get("/contacts", params={"case_id": case["id"]})).json()["items"]
    assert {c["id"] for c in listed} == {first["id"], follow["id"], later["id"]}


async def test_contact_personal_data_is_audited(operator, as_role):
    contact = (await operator.post("/contacts", json=call(caller_name="Trần F", caller_phone="0912000111"))).json()
    personal = (await operator.get(f"/contacts/{contact['id']}/personal-data")).json()
    assert personal == {"caller_name": "Trần F", "caller_phone": "0912000111", "notes": None}
    records = (await as_role("auditor").get("/audit", params={"contact_id": contact["id"]})).json()["items"]
    assert len(records) == 1 and records[0]["fields"] == ["caller_name", "caller_phone", "notes"]


async def test_consultations_count_in_reporting_without_a_case(stack, client, as_role):
    api = as_role("operator", sub="op-report")
    body = call(channel="chat", started_at="2026-02-03T10:00:00+00:00", ended_at="2026-02-03T10:09:00+00:00")
    url = f"{stack.url('reporting')}/v1/stats/contacts"
    headers = {"Authorization": f"Bearer {stack.token('analyst', 'admin', sub='rep-1')}"}
    params = {"from": "2026-02-01", "to": "2026-02-28", "group": "all", "by": "contact_type,channel",
              "suppress": "false"}

    async def count() -> int:
        rows = (await client.get(url, params=params, headers=headers)).json()["rows"]
        return sum(r["value"] for r in rows if (r["contact_type"], r["channel"]) == ("consultation", "chat"))

    before = await count()
    for _ in range(2):
        assert (await api.post("/contacts", json=body)).status_code == 201

    async def counted():
        return await count() == before + 2

    await eventually(counted, 30)


async def test_a_retried_case_from_a_contact_returns_the_first_case(operator):
    contact = (await operator.post("/contacts", json=call(contact_type="information_report"))).json()
    body = {"province_code": "01", "contact_id": contact["id"]}
    first = await operator.post("/cases", json=body, headers={"Idempotency-Key": f"from-{contact['id']}"})
    retry = await operator.post("/cases", json=body, headers={"Idempotency-Key": f"from-{contact['id']}"})
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json()["id"] == first.json()["id"]
