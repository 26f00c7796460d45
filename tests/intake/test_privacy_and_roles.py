"""Encryption at rest, the audit trail of personal-data reads, and who may do what."""
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from runtime.crypto import kid_of
from tests.intake.test_cases import FULL_CASE, create


async def raw(stack, sql: str, **params):
    engine = create_async_engine(stack.database_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).all()
    finally:
        await engine.dispose()


async def test_names_phones_and_free_text_are_ciphertext_in_the_database(stack, operator):
    case = (await create(operator, FULL_CASE)).json()
    contact = await operator.post("/contacts", json={
        "channel": "phone", "contact_type": "information_report", "started_at": "2026-01-01T10:00:00Z",
        "ended_at": "2026-01-01T10:05:00Z", "caller_name": "Nguyễn Văn E", "caller_phone": "+84 912 345 678",
        "notes": "lives next to the karaoke bar"})
    assert contact.status_code == 201, contact.text
    rows = await raw(stack, "SELECT narrative FROM intake.cases WHERE id = :id", id=case["id"])
    rows += await raw(stack, "SELECT name FROM intake.victims WHERE case_id = :id AND name IS NOT NULL", id=case["id"])
    rows += await raw(stack, "SELECT caller_name, caller_phone, notes FROM intake.contacts WHERE id = :id",
                      id=contact.json()["id"])
    blobs = [bytes(v) for row in rows for v in row]
    assert len(blobs) == 5 and all(kid_of(b) for b in blobs)
    for plain in ("Lào Cai", "Lò Thị", "Nguyễn", "912345678", "karaoke"):
        assert all(plain.encode() not in b for b in blobs)


async def test_reading_personal_data_is_audited_and_auditors_can_see_it(operator, as_role):
    case = (await create(operator, FULL_CASE)).json()
    personal = await operator.get(f"/cases/{case['id']}/personal-data")
    assert personal.status_code == 200
    assert personal.json()["narrative"] == FULL_CASE["narrative"]
    assert personal.json()["victims"][0]["name"] == "Lò Thị D"
    auditor = as_role("auditor", sub="aud-1")
    records = (await auditor.get("/audit", params={"case_id": case["id"]})).json()["items"]
    assert [(r["actor"], r["action"]) for r in records] == [("op-1", "read_personal_data")]
    assert "narrative" in records[0]["fields"] and "victims.name" in records[0]["fields"]
    assert (await operator.get(f"/cases/{case['id']}")).status_code == 200
    assert len((await auditor.get("/audit", params={"case_id": case["id"]})).json()["items"]) == 1
    await operator.get(f"/cases/{case['id']}/personal-data")  # a second read, a second record
    first = (await auditor.get("/audit", params={"case_id": case["id"], "limit": 1})).json()
    second = (await auditor.get("/audit", params={"case_id": case["id"], "limit": 1,
                                                  "cursor": first["next_cursor"]})).json()
    assert first["next_cursor"] and second["next_cursor"] is None
    assert first["items"][0]["id"] > second["items"][0]["id"]  # newest first, no overlap


@pytest.mark.parametrize(("roles", "method", "path", "expected"), [
    ((), "GET", "/cases", 401),
    (("auditor",), "POST", "/cases", 403),
    (("auditor",), "GET", "/cases", 403),
    (("operator",), "GET", "/audit", 403),
    (("supervisor",), "GET", "/audit", 403),
    (("auditor",), "GET", "/audit", 200),
    (("operator",), "GET", "/cases", 200),
    (("supervisor",), "GET", "/contacts", 200),
])
async def test_role_matrix(as_role, roles, method, path, expected):
    api = as_role(*roles)
    r = await api.request(method, path, json={"province_code": "01"} if method == "POST" else None)
    assert r.status_code == expected, r.text
    if expected == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"] == "application/problem+json"


async def test_bad_token_is_401(stack, client):
    r = await client.get(f"{stack.url('intake')}/cases", headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401


async def test_operators_see_their_own_cases_and_supervisors_see_all(as_role):
    mine = as_role("operator", sub="op-a")
    theirs = as_role("operator", sub="op-b")
    case = (await create(mine)).json()
    assert (await theirs.get(f"/cases/{case['id']}")).status_code == 404
    assert (await theirs.get(f"/cases/{case['id']}/personal-data")).status_code == 404
    assert case["id"] not in [c["id"] for c in (await theirs.get("/cases")).json()["items"]]
    assert (await as_role("supervisor", sub="sup-2").get(f"/cases/{case['id']}")).status_code == 200
