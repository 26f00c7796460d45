"""The referral lifecycle over the running stack (intake → referral → notify → SMTP sink → referral):
delivery marks referrals notified; an agency acknowledges, accepts, records outcomes and closes with
ETags; a signed link acknowledges once; a decline re-routes; each agency sees only its own referrals;
staff endpoints need a staff token. Events are read back from the broker and checked against the schemas.

Cần Thơ and Hải Phòng are used by no other stack test; neither has a land border, so a normal adult's case
reaches exactly its commune police and its commune People's Committee."""
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from schemas.geography import communes
from services.referral.directory.facts import resolve_province
from services.referral.referrals.links import AckLinks
from tests.support import eventually, read_topic

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "jsonschema"
TOPIC = "referral.referrals.v1"
CAN_THO = resolve_province("Cần Thơ")
HAI_PHONG = resolve_province("Hải Phòng")


def commune_named(province: str, name: str) -> str:
    (code,) = [c for c, (n, p) in communes().items() if p == province and n == name]
    return code


NINH_KIEU = commune_named(CAN_THO, "Phường Ninh Kiều")  # the happy path, visibility, staff access
CAI_KHE = commune_named(CAN_THO, "Phường Cái Khế")  # the acknowledge link
THANH_DONG = commune_named(HAI_PHONG, "Phường Thành Đông")  # declines
AGENCY_VIEW = {"id", "case_number", "urgency", "province_code", "commune_code", "unit", "rule_ids", "match_reason",
               "identity_shared", "cause", "status", "version", "acknowledge_by", "created_at", "notified_at",
               "acknowledged_at", "accepted_at", "declined_at", "decline_reason", "closed_at", "outcomes"}


# ---- clients ----------------------------------------------------------------------------------------------

@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def staff(stack, role: str = "operator") -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token(role, sub=f'{role}-lifecycle')}"}


class Agency:
    """The agency API as a token naming `units` sees it."""

    def __init__(self, http: httpx.AsyncClient, stack, *units: str):
        self.http, self.base = http, f"{stack.url('referral')}/agency/referrals"
        token = stack.token("agency", sub="-".join(units) or "nobody", agency_units=units)
        self.headers = {"Authorization": f"Bearer {token}"}

    async def list(self, **params) -> httpx.Response:
        return await self.http.get(self.base, params=params, headers=self.headers)

    async def get(self, referral_id: str) -> httpx.Response:
        return await self.http.get(f"{self.base}/{referral_id}", headers=self.headers)

    async def act(self, referral_id: str, action: str, etag: str | None, body: dict | None = None) -> httpx.Response:
        headers = {**self.headers, **({"If-Match": etag} if etag else {})}
        return await self.http.post(f"{self.base}/{referral_id}/{action}", json=body, headers=headers)


async def report(http, stack, province: str, commune: str) -> dict:
    """A normal case, one adult with no needs."""
    r = await http.post(f"{stack.url('intake')}/cases", headers=staff(stack), json={
        "province_code": province, "commune_code": commune, "channel": "phone",
        "victims": [{"sex": "male", "age": 35}]})
    assert r.status_code == 201, r.text
    return r.json()


async def staff_referrals(http, stack, case_id: str) -> list[dict]:
    r = await http.get(f"{stack.url('referral')}/referrals", params={"case_id": case_id}, headers=staff(stack))
    assert r.status_code == 200, r.text
    return r.json()


async def notified(http, stack, case: dict, count: int = 2) -> dict[str, dict]:
    """The case's referrals by unit code, once `count` of them exist and notify reported each delivered."""
    async def all_notified():
        found = await staff_referrals(http, stack, case["id"])
        return found if len(found) == count and all(r["status"] == "notified" for r in found) else None

    found = await eventually(all_notified, 60, interval=0.25)
    units = (await http.get(f"{stack.url('referral')}/agency-units",
                            params={"province_code": case["province_code"], "limit": 1000})).json()
    code_of = {u["id"]: u["code"] for u in units}
    return {code_of[r["agency_unit_id"]]: r for r in found}


async def events_of(stack, case_id: str, count: int) -> list[tuple[str, dict]]:
    """(ce_type, payload) of the case's referral events, once `count` have arrived; each checked against
    its committed JSON Schema."""
    async def arrived():
        records = [r for r in await read_topic(stack.bootstrap, TOPIC, 1) if r.key and r.key.decode() == case_id]
        return records if len(records) >= count else None

    out = []
    for record in await eventually(arrived, 30, interval=0.5):
        ce_type = dict(record.headers)["ce_type"].decode()
        payload = json.loads(record.value)
        schema = Draft202012Validator(json.loads((SCHEMAS / f"{ce_type}.json").read_text()))
        errors = [e.message for e in schema.iter_errors(payload)]
        assert not errors, (ce_type, errors)
        out.append((ce_type.removeprefix("vn.hotline111.").removesuffix(".v1"), payload))
    return out


def moves(events, referral_id: str) -> list[tuple[str, str, str]]:
    return [(p["from_status"], p["to_status"], p["via"]) for t, p in events
            if t == "referral.status-changed" and p["referral_id"] == referral_id]


async def timer_of(stack, referral_id: str) -> tuple:
    engine = create_async_engine(stack.database_url)
    try:
        async with engine.connect() as conn:
            return tuple((await conn.execute(text("SELECT due_step, due_at FROM referral.referrals WHERE id = :id"),
                                             {"id": referral_id})).one())
    finally:
        await engine.dispose()


# ---- a case in Ninh Kiều, Cần Thơ ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
async def ninh_kieu(stack):
    async with httpx.AsyncClient(timeout=30) as http:
        case = await report(http, stack, CAN_THO, NINH_KIEU)
        return case, await notified(http, stack, case)


async def test_a_delivered_alert_marks_the_referral_notified(http, stack, ninh_kieu):
    case, made = ninh_kieu
    assert set(made) == {f"police-commune-{NINH_KIEU}", f"peoples-committee-{NINH_KIEU}"}
    for r in made.values():
        assert (r["version"], r["cause"], r["previous_referral_id"]) == (2, "matched", None)
        assert r["notified_at"] and r["acknowledged_at"] is None
    events = await events_of(stack, case["id"], 4)
    for r in made.values():
        assert moves(events, r["id"]) == [("created", "notified", "delivery")]
        assert await timer_of(stack, r["id"]) != (None, None)  # still waiting for an acknowledgement
    created = [p for t, p in events if t == "referral.created"]
    assert all(p["ack_url"].startswith(f"{stack.url('referral')}/ack/") for p in created)


async def test_an_agency_takes_a_referral_through_its_lifecycle_with_etags(http, stack, ninh_kieu):
    case, made = ninh_kieu
    police = Agency(http, stack, f"police-commune-{NINH_KIEU}")
    rid = made[f"police-commune-{NINH_KIEU}"]["id"]

    listed = (await police.list(status="notified")).json()
    assert [r["id"] for r in listed["items"]] == [rid] and listed["next_cursor"] is None
    read = await police.get(rid)
    assert read.status_code == 200 and read.headers["etag"] == '"2"'
    view = read.json()
    assert set(view) == AGENCY_VIEW  # no case id, no trace, nobody else's data
    assert (view["case_number"], view["province_code"], view["commune_code"]) == (case["case_number"], CAN_THO,
                                                                                  NINH_KIEU)
    assert view["unit"]["code"] == f"police-commune-{NINH_KIEU}" and view["rule_ids"] == ["police-commune"]
    assert view["status"] == "notified" and view["outcomes"] == []

    assert (await police.act(rid, "acknowledge", None)).status_code == 428
    assert (await police.act(rid, "acknowledge", '"1"')).status_code == 412
    acked = await police.act(rid, "acknowledge", '"2"')
    assert acked.status_code == 200, acked.text
    assert acked.headers["etag"] == '"3"' and acked.json()["status"] == "acknowledged"
    assert await timer_of(stack, rid) == (None, None)  # no reminder, no escalation any more

    again = await police.act(rid, "acknowledge", '"3"')
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    assert again.json()["errors"][0]["field"] == "status" and "already acknowledged" in again.json()["detail"]
    early = await police.act(rid, "outcomes", '"3"', {"outcome": "investigation_opened"})
    assert early.status_code == 409 and "accepted referrals" in early.json()["detail"]

    assert (await police.act(rid, "accept", '"3"')).headers["etag"] == '"4"'
    uncounted = await police.act(rid, "outcomes", '"4"', {"outcome": "victims_rescued"})
    assert uncounted.status_code == 422 and uncounted.json()["errors"][0]["field"] == "victims"
    etag = '"4"'
    for body in ({"outcome": "investigation_opened"}, {"outcome": "victims_rescued", "victims": 2},
                 {"outcome": "victims_supported", "services": ["shelter", "medical"]}):
        recorded = await police.act(rid, "outcomes", etag, body)
        assert recorded.status_code == 201, recorded.text
        etag = recorded.headers["etag"]
    assert etag == '"7"'
    assert [(o["outcome"], o["victims"], o["services"]) for o in recorded.json()["outcomes"]] == [
        ("investigation_opened", None, []), ("victims_rescued", 2, []), ("victims_supported", None,
                                                                         ["shelter", "medical"])]
    closed = await police.act(rid, "close", etag)
    assert closed.status_code == 200 and closed.json()["status"] == "closed" and closed.headers["etag"] == '"8"'

    # closed is final: every action is a 409 and changes nothing
    for action, body in (("accept", None), ("acknowledge", None), ("close", None), ("decline", {"reason": "other"}),
                         ("outcomes", {"outcome": "not_substantiated"})):
        refused = await police.act(rid, action, '"8"', body)
        assert refused.status_code == 409, (action, refused.text)
        assert refused.json()["errors"][0]["field"] == "status"
    final = (await police.get(rid)).json()
    assert final["version"] == 8 and len(final["outcomes"]) == 3
    assert all(final[f] for f in ("notified_at", "acknowledged_at", "accepted_at", "closed_at"))

    events = await events_of(stack, case["id"], 4 + 3 + 3)
    assert moves(events, rid) == [("created", "notified", "delivery"), ("notified", "acknowledged", "agency_api"),
                                  ("acknowledged", "accepted", "agency_api"), ("accepted", "closed", "agency_api")]
    outcomes = [p for t, p in events if t == "referral.outcome-recorded"]
    assert [(p["outcome"], p["victims"], p["services"], p["agency_kind"]) for p in outcomes] == [
        ("investigation_opened", None, [], "police_commune"), ("victims_rescued", 2, [], "police_commune"),
        ("victims_supported", None, ["shelter", "medical"], "police_commune")]
    assert all(p["referral_id"] == rid and p["province_code"] == CAN_THO for p in outcomes)


async def test_an_agency_reads_only_its_own_referrals(http, stack, ninh_kieu):
    case, made = ninh_kieu
    police, committee = made[f"police-commune-{NINH_KIEU}"]["id"], made[f"peoples-committee-{NINH_KIEU}"]["id"]
    people = Agency(http, stack, f"peoples-committee-{NINH_KIEU}")
    assert [r["id"] for r in (await people.list()).json()["items"]] == [committee]
    hidden = await people.get(police)
    assert hidden.status_code == 404 and hidden.json()["status"] == 404  # not 403: it does not exist for them
    assert (await people.act(police, "acknowledge", '"2"')).status_code == 404

    province = Agency(http, stack, f"police-province-{CAN_THO}")  # covers its commune police units
    mine = [r["id"] for r in (await province.list(limit=200)).json()["items"]]
    assert police in mine and committee not in mine
    assert (await province.get(police)).status_code == 200
    assert (await province.get(committee)).status_code == 404
    # another province's police sees neither
    assert (await Agency(http, stack, f"police-province-{HAI_PHONG}").get(police)).status_code == 404
    nobody = await Agency(http, stack).list()
    assert nobody.status_code == 403 and "agency_units" in nobody.json()["detail"]


async def test_agency_lists_page_newest_first(http, stack, ninh_kieu):
    province = Agency(http, stack, f"police-province-{CAN_THO}")
    everything = (await province.list(limit=200)).json()["items"]
    pages, cursor = [], None
    while True:
        page = (await province.list(limit=1, **({"cursor": cursor} if cursor else {}))).json()
        pages += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [r["id"] for r in pages] == [r["id"] for r in everything]
    assert [r["created_at"] for r in everything] == sorted((r["created_at"] for r in everything), reverse=True)
    bad = await province.list(cursor="nonsense")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"


async def test_staff_endpoints_need_a_staff_token(http, stack, ninh_kieu):
    case, made = ninh_kieu
    base, rid = stack.url("referral"), next(iter(made.values()))["id"]
    agency = Agency(http, stack, f"police-commune-{NINH_KIEU}").headers
    for method, path, body in (("GET", f"/referrals?case_id={case['id']}", None), ("GET", f"/referrals/{rid}", None),
                               ("GET", "/matching/rules", None),
                               ("POST", "/matching/dry-run", {"province_code": CAN_THO, "urgency": "normal"})):
        assert (await http.request(method, base + path, json=body)).status_code == 401, path
        assert (await http.request(method, base + path, json=body, headers=agency)).status_code == 403, path
        for role in ("operator", "supervisor"):
            assert (await http.request(method, base + path, json=body, headers=staff(stack, role))).status_code == 200
    # and the agency API is for agencies
    assert (await http.get(f"{base}/agency/referrals")).status_code == 401
    assert (await http.get(f"{base}/agency/referrals", headers=staff(stack))).status_code == 403
    assert (await http.get(f"{base}/healthz")).status_code == 200


# ---- the acknowledge link -------------------------------------------------------------------------------

async def test_the_signed_link_acknowledges_once(http, stack):
    case = await report(http, stack, CAN_THO, CAI_KHE)
    made = await notified(http, stack, case)
    rid = made[f"police-commune-{CAI_KHE}"]["id"]
    created = [p for t, p in await events_of(stack, case["id"], 2) if t == "referral.created"]
    (url,) = [p["ack_url"] for p in created if p["referral_id"] == rid]

    # Opening the link (a mail scanner, a chat preview) changes nothing; the button does.
    opened = await http.get(url, headers={"Accept": "text/html"})
    assert opened.status_code == 200 and '<form method="post">' in opened.text and case["case_number"] in opened.text
    preview = await http.get(url)
    assert (preview.json()["status"], preview.json()["acknowledged_at"]) == ("notified", None)
    first = await http.post(url)
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["already_acknowledged"]) == ("acknowledged", False)
    assert first.json()["case_number"] == case["case_number"]
    second = await http.post(url)
    assert second.status_code == 200 and second.json()["already_acknowledged"] is True
    pressed_again = await http.post(url, headers={"Accept": "text/html"})
    assert "already acknowledged" in pressed_again.text and "<form" not in pressed_again.text
    assert second.json()["acknowledged_at"] == first.json()["acknowledged_at"]
    assert "already acknowledged" in second.json()["detail"]

    referral = (await Agency(http, stack, f"police-commune-{CAI_KHE}").get(rid)).json()
    assert (referral["status"], referral["version"]) == ("acknowledged", 3)
    assert await timer_of(stack, rid) == (None, None)
    events = await events_of(stack, case["id"], 2 + 2 + 1)
    assert moves(events, rid) == [("created", "notified", "delivery"), ("notified", "acknowledged", "ack_link")]


async def test_an_altered_expired_or_unknown_link_is_refused(http, stack):
    base = f"{stack.url('referral')}/ack/"
    links = AckLinks(stack.link_secret, stack.url("referral"))
    unknown = links.token(uuid.uuid4(), datetime.now(UTC) + timedelta(hours=1))
    expired = links.token(uuid.uuid4(), datetime.now(UTC) - timedelta(minutes=1))
    tampered = unknown[:-10] + ("A" if unknown[-10] != "A" else "B") + unknown[-9:]  # inside the signature
    forged = AckLinks("f" * 40, "x").token(uuid.uuid4(), datetime.now(UTC) + timedelta(hours=1))
    login = stack.token("operator", sub=str(uuid.uuid4()))  # signed with another secret, for another purpose
    for token, status, words in ((expired, 401, "expired"), (tampered, 401, "not a valid"),
                                 (forged, 401, "not a valid"), (login, 401, "not a valid"),
                                 (unknown, 404, "no referral")):
        for r in (await http.get(base + token), await http.post(base + token)):
            assert r.status_code == status, (words, r.text)
            assert r.headers["content-type"] == "application/problem+json" and words in r.json()["detail"]


# ---- decline and re-route --------------------------------------------------------------------------------

async def test_a_decline_reroutes_to_the_next_candidate(http, stack):
    case = await report(http, stack, HAI_PHONG, THANH_DONG)
    made = await notified(http, stack, case)
    police = Agency(http, stack, f"police-commune-{THANH_DONG}")
    rid = made[f"police-commune-{THANH_DONG}"]["id"]

    early = await police.act(rid, "decline", '"2"', {"reason": "not_competent"})
    assert early.status_code == 409 and "from notified it can go to acknowledged" in early.json()["detail"]
    assert (await police.act(rid, "acknowledge", '"2"')).status_code == 200
    assert (await police.act(rid, "decline", '"3"', {"reason": "because"})).status_code == 422
    declined = await police.act(rid, "decline", '"3"', {"reason": "not_competent"})
    assert declined.status_code == 200, declined.text
    body = declined.json()
    assert (body["status"], body["decline_reason"], body["rerouted"]) == ("declined", "not_competent", True)
    assert declined.headers["etag"] == '"4"' and "referred on" in body["detail"]
    assert "police-province" not in declined.text  # the unit that declined is not told who has it now

    # the commune police fall back to the provincial police, who see the new referral
    now = {r["id"]: r for r in await staff_referrals(http, stack, case["id"])}
    (new,) = [r for r in now.values() if r["id"] not in {m["id"] for m in made.values()}]
    assert (new["cause"], new["previous_referral_id"], new["rule_ids"]) == ("reroute", rid, ["police-commune"])
    assert new["match_reason"].startswith("re-routed: ") and "declined (not_competent)" in new["match_reason"]
    province = Agency(http, stack, f"police-province-{HAI_PHONG}")
    seen = (await province.get(new["id"])).json()
    assert (seen["unit"]["code"], seen["cause"]) == (f"police-province-{HAI_PHONG}", "reroute")
    assert seen["status"] in ("created", "notified")  # its alert goes out like any other
    events = await events_of(stack, case["id"], 2 + 2 + 2 + 1)
    (alert,) = [p for t, p in events if t == "referral.created" and p["referral_id"] == new["id"]]
    assert (alert["cause"], alert["previous_referral_id"]) == ("reroute", rid) and alert["ack_url"]
    assert moves(events, rid)[-1] == ("acknowledged", "declined", "agency_api")
    assert [p["decline_reason"] for t, p in events if t == "referral.status-changed"
            and p["to_status"] == "declined"] == ["not_competent"]

    # the commune People's Committee has no fallback: declining leaves nobody, and says so
    committee = Agency(http, stack, f"peoples-committee-{THANH_DONG}")
    cid = made[f"peoples-committee-{THANH_DONG}"]["id"]
    assert (await committee.act(cid, "acknowledge", '"2"')).status_code == 200
    alone = await committee.act(cid, "decline", '"3"', {"reason": "no_capacity"})
    assert alone.status_code == 200 and alone.json()["rerouted"] is False
    assert "No other unit" in alone.json()["detail"]
    assert len(await staff_referrals(http, stack, case["id"])) == 3
    after_decline = await committee.act(cid, "accept", '"4"')
    assert after_decline.status_code == 409 and "declined" in after_decline.json()["detail"]
