"""The directory admin API over the running stack: create, read with an ETag, replace and change status with
If-Match, stale listing and verification, the role matrix, all-or-nothing imports (dry runs included),
export → import round trips, the running matcher picking up a change at once, and DirectoryUnitChanged
events on referral.directory.v1, checked against the committed schemas.

Every unit made here has a `test-` code and lies in Ninh Bình, which no other stack test uses. The units
are removed again when the module ends (the API never deletes; SQL does), so the directory other modules
see is the seed's."""
import csv
import io
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from schemas.geography import communes
from services.referral.directory.facts import resolve_province
from tests.support import eventually, read_topic

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "jsonschema"
TOPIC = "referral.directory.v1"
NINH_BINH = resolve_province("Ninh Bình")
HANOI = resolve_province("Hà Nội")


def commune_named(province: str, name: str) -> str:
    (code,) = [c for c, (n, p) in communes().items() if p == province and n == name]
    return code


CHAU_SON = commune_named(NINH_BINH, "Phường Châu Sơn")  # create, replace, status, events
PHU_LY = commune_named(NINH_BINH, "Phường Phủ Lý")  # matching picks up a new unit
PHU_VAN = commune_named(NINH_BINH, "Phường Phù Vân")  # stale listing
DUY_TIEN = commune_named(NINH_BINH, "Phường Duy Tiên")  # imports
DUY_TAN = commune_named(NINH_BINH, "Phường Duy Tân")  # listing
HOAN_KIEM = commune_named(HANOI, "Phường Hoàn Kiếm")  # a commune outside Ninh Bình, for a mismatch
STARTED = datetime.now(UTC)


def today_local() -> date:
    return datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()


def unit(code: str, commune: str = CHAU_SON, **fields) -> dict:
    """An active commune-level psychological support unit, as the API takes it."""
    return {
        "code": code, "name": f"Tư vấn tâm lý {code}", "kind": "psychological_support", "level": "commune",
        "province_code": NINH_BINH, "commune_code": commune, "services": ["psychological"], "languages": ["vi"],
        "opening_hours": ["mon-fri 07:30-17:00"], "status": "active",
        "contacts": [{"channel": "email", "address": f"{code}@agencies.hotline111.example", "preference": 1,
                      "duty_24_7": False}],
        "source": "tests/referral/test_directory_api.py",
    } | fields


async def _delete_test_units(stack) -> None:
    engine = create_async_engine(stack.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM referral.agency_units WHERE code LIKE 'test-%'"))
            await conn.execute(text("UPDATE referral.directory_state SET version = version + 1 WHERE id = 1"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module", autouse=True)
async def clean_directory(stack):
    await _delete_test_units(stack)
    yield
    await _delete_test_units(stack)


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


class Directory:
    """The directory API as one bearer (None: no token) sees it."""

    def __init__(self, http: httpx.AsyncClient, stack, *roles: str, **claims):
        self.http, self.stack, self.base = http, stack, f"{stack.url('referral')}/directory"
        sub = "-".join(roles) or "nobody"
        self.headers = {"Authorization": f"Bearer {stack.token(*roles, sub=f'{sub}-dir', **claims)}"} if roles else {}

    async def get(self, path: str, **params) -> httpx.Response:
        return await self.http.get(f"{self.base}{path}", params=params, headers=self.headers)

    async def send(self, method: str, path: str, body=None, etag: str | None = None) -> httpx.Response:
        headers = {**self.headers, **({"If-Match": etag} if etag else {})}
        return await self.http.request(method, f"{self.base}{path}", json=body, headers=headers)

    async def create(self, body: dict) -> dict:
        r = await self.send("POST", "/units", body)
        assert r.status_code == 201, r.text
        return r.json()

    async def import_file(self, content: str, fmt: str, dry_run: bool) -> httpx.Response:
        media = {"csv": "text/csv", "yaml": "application/yaml"}[fmt]
        return await self.http.post(f"{self.base}/import", params={"format": fmt, "dry_run": str(dry_run).lower()},
                                    content=content.encode(), headers={**self.headers, "content-type": media})


@pytest.fixture
def admin(http, stack) -> Directory:
    return Directory(http, stack, "admin")


@pytest.fixture
def operator(http, stack) -> Directory:
    return Directory(http, stack, "operator")


def without_changing(u: dict) -> dict:
    return {k: v for k, v in u.items() if k not in ("id", "code", "version", "updated_at")}


def problem_fields(r: httpx.Response) -> list:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return [(e.get("row"), e["field"]) if "row" in e else e["field"] for e in r.json()["errors"]]


async def unit_events(stack, code: str, count: int) -> list[dict]:
    """The unit's DirectoryUnitChanged payloads made by this session, each checked against its schema."""
    async def arrived():
        records = [r for r in await read_topic(stack.bootstrap, TOPIC, 1) if r.key == code.encode()]
        fresh = [r for r in records if datetime.fromisoformat(json.loads(r.value)["changed_at"]) >= STARTED]
        return fresh if len(fresh) >= count else None

    out = []
    for record in await eventually(arrived, 30, interval=0.5):
        headers = dict(record.headers)
        ce_type = headers["ce_type"].decode()
        assert ce_type == "vn.hotline111.directory.unit-changed.v1"
        assert headers["ce_subject"].decode() == code
        payload = json.loads(record.value)
        schema = Draft202012Validator(json.loads((SCHEMAS / f"{ce_type}.json").read_text()))
        assert not [e.message for e in schema.iter_errors(payload)]
        out.append(payload)
    return out


# ---- one unit's life ---------------------------------------------------------------------------------------

async def test_create_read_replace_and_deactivate_a_unit_with_etags_and_events(admin, operator):
    body = unit("test-psy-chau-son")
    created = await admin.create(body)
    assert created["version"] == 1 and created["last_verified"] is None
    assert without_changing(created) == without_changing(body | {"region": None, "country": None,
                                                                 "parent_code": None, "last_verified": None})

    r = await operator.get("/units/test-psy-chau-son")
    assert r.status_code == 200 and r.headers["etag"] == '"1"'
    assert r.json() == created  # contacts and opening hours included
    again = await admin.send("POST", "/units", body)
    assert again.status_code == 409 and problem_fields(again) == ["code"]

    changed = without_changing(r.json()) | {"name": "Trung tâm tư vấn Châu Sơn",
                                           "opening_hours": ["mon-fri 07:30-17:00", "sat 08:00-12:00"]}
    no_etag = await admin.send("PUT", "/units/test-psy-chau-son", changed)
    assert no_etag.status_code == 428 and problem_fields(no_etag) == ["If-Match"]
    stale = await admin.send("PUT", "/units/test-psy-chau-son", changed, etag='"7"')
    assert stale.status_code == 412 and problem_fields(stale) == ["If-Match"]
    r = await admin.send("PUT", "/units/test-psy-chau-son", changed, etag='"1"')
    assert r.status_code == 200 and r.headers["etag"] == '"2"', r.text
    assert r.json()["opening_hours"] == ["mon-fri 07:30-17:00", "sat 08:00-12:00"]
    same = await admin.send("PUT", "/units/test-psy-chau-son", changed, etag='"2"')
    assert same.status_code == 200 and same.json()["version"] == 2  # nothing changed: nothing written

    r = await admin.send("POST", "/units/test-psy-chau-son/status", {"status": "inactive"}, etag='"2"')
    assert r.status_code == 200 and r.json()["status"] == "inactive" and r.headers["etag"] == '"3"'
    assert (await admin.send("DELETE", "/units/test-psy-chau-son")).status_code == 405  # history points at units

    events = await unit_events(admin.stack, "test-psy-chau-son", 3)
    assert [(e["change"], e["version"], e["status"]) for e in events] == [
        ("created", 1, "active"), ("updated", 2, "active"), ("status_changed", 3, "inactive")]
    assert {(e["unit_id"], e["code"], e["kind"], e["level"], e["province_code"], e["commune_code"]) for e in events} \
        == {(created["id"], "test-psy-chau-son", "psychological_support", "commune", NINH_BINH, CHAU_SON)}
    assert all("contacts" not in e for e in events)


@pytest.mark.parametrize(("change", "field"), [
    ({"commune_code": "99999"}, "commune_code"),  # unknown
    ({"commune_code": HOAN_KIEM}, "commune_code"),  # in Hà Nội, not in Ninh Bình
    ({"province_code": "00"}, "province_code"),
    ({"kind": "fortune_teller"}, "kind"),
    ({"level": "galactic"}, "level"),
    ({"services": ["psychological", "astrology"]}, "services"),
    ({"status": "dormant"}, "status"),
    ({"contacts": [{"channel": "pigeon", "address": "x@agencies.hotline111.example"}]}, "contacts"),
    ({"contacts": [{"channel": "sms", "address": "0912"}]}, "contacts"),
    ({"opening_hours": ["mon-fri 17:00-07:30"]}, "opening_hours"),
    ({"parent_code": "test-nobody"}, "parent_code"),
    ({"code": "Not A Code"}, "code"),
    ({"name": " "}, "name"),
])
async def test_a_unit_is_checked_like_a_row_of_a_directory_file(admin, change, field):
    r = await admin.send("POST", "/units", unit("test-invalid") | change)
    assert r.status_code == 422, r.text
    assert problem_fields(r) == [field]
    assert (await admin.get("/units/test-invalid")).status_code == 404


# ---- who may do what ---------------------------------------------------------------------------------------

async def test_staff_read_admins_write_agencies_and_strangers_do_neither(http, stack, admin):
    nobody, agency = Directory(http, stack), Directory(http, stack, "agency", agency_units=["police-province-01"])
    auditor, supervisor = Directory(http, stack, "auditor"), Directory(http, stack, "supervisor")
    operator = Directory(http, stack, "operator")
    await admin.create(unit("test-roles"))
    for who, read, write in ((nobody, 401, 401), (agency, 403, 403), (auditor, 403, 403), (operator, 200, 403),
                             (supervisor, 200, 403)):
        assert (await who.get("/units", province_code=NINH_BINH, limit=5)).status_code == read
        assert (await who.get("/units/test-roles")).status_code == read
        assert (await who.get("/stale", limit=1)).status_code == read
        assert (await who.send("POST", "/units", unit("test-roles-2"))).status_code == write
        assert (await who.send("PUT", "/units/test-roles", without_changing(unit("test-roles")),
                               etag='"1"')).status_code == write
        assert (await who.send("POST", "/units/test-roles/verify", etag='"1"')).status_code == write
        assert (await who.import_file("", "yaml", dry_run=True)).status_code == write
    assert (await agency.get("/export")).status_code == 403
    assert (await admin.get("/units/test-roles")).json()["version"] == 1  # nothing got through
    assert (await admin.get("/units/test-roles-2")).status_code == 404


async def test_listing_filters_in_code_order_with_a_cursor(admin, operator):
    for i in range(3):
        await admin.create(unit(f"test-list-{i}", commune=DUY_TAN, services=["psychological", "social"]))
    seen, cursor = [], None
    while True:
        r = await operator.get("/units", commune_code=DUY_TAN, kind="psychological_support", limit=2,
                               **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        seen += [u["code"] for u in r.json()["items"]]
        if not (cursor := r.json()["next_cursor"]):
            break
    assert seen == ["test-list-0", "test-list-1", "test-list-2"]
    everything = (await operator.get("/units", commune_code=DUY_TAN, limit=500)).json()["items"]
    assert {u["kind"] for u in everything} == {"psychological_support", "police_commune", "peoples_committee"}
    assert [u["code"] for u in everything] == sorted(u["code"] for u in everything)
    bad = await operator.get("/units", kind="fortune_teller")
    assert bad.status_code == 422 and problem_fields(bad) == ["kind"]
    bad = await operator.get("/units", cursor="not-a-cursor")
    assert bad.status_code == 422 and problem_fields(bad) == ["cursor"]


# ---- stale units -------------------------------------------------------------------------------------------

async def test_stale_units_are_listed_until_verified(admin, operator):
    today = today_local()
    await admin.create(unit("test-stale-old", commune=PHU_VAN, last_verified=str(today - timedelta(days=181))))
    await admin.create(unit("test-stale-never", commune=PHU_VAN))
    await admin.create(unit("test-stale-fresh", commune=PHU_VAN, last_verified=str(today - timedelta(days=170))))
    await admin.create(unit("test-stale-closed", commune=PHU_VAN, status="inactive"))  # nobody refers to it

    async def stale_codes(path: str, **params) -> set[str]:
        r = await operator.get(path, commune_code=PHU_VAN, limit=500, **params)
        assert r.status_code == 200, r.text
        return {u["code"] for u in r.json()["items"] if u["code"].startswith("test-")}

    assert await stale_codes("/stale") == await stale_codes("/units", stale="true") == {
        "test-stale-old", "test-stale-never"}

    r = await admin.send("POST", "/units/test-stale-old/verify")
    assert r.status_code == 428
    r = await admin.send("POST", "/units/test-stale-old/verify", etag='"1"')
    assert r.status_code == 200, r.text
    assert r.json()["last_verified"] in {str(today), str(today_local())} and r.headers["etag"] == '"2"'
    assert await stale_codes("/stale") == {"test-stale-never"}
    r = await admin.send("POST", "/units/test-stale-old/verify", etag='"1"')
    assert r.status_code == 412

    events = await unit_events(admin.stack, "test-stale-old", 2)
    assert [(e["change"], e["version"]) for e in events] == [("created", 1), ("verified", 2)]


# ---- the matcher sees a change at once -----------------------------------------------------------------------

async def test_a_new_unit_is_matched_at_once_and_a_deactivated_one_no_more(http, stack, admin):
    facts = {"province_code": NINH_BINH, "commune_code": PHU_LY, "urgency": "normal",
             "victims": [{"sex": "female", "age_band": "21-23", "is_child": False, "needs": ["psychological"]}]}

    async def psychological_support() -> list[str]:
        r = await http.post(f"{stack.url('referral')}/matching/dry-run", json=facts,
                            headers=stack.auth_headers("operator", sub="op-dir"))
        assert r.status_code == 200, r.text
        return [u["code"] for u in r.json()["units"] if "psychological" in u["needs"]]

    (before,) = await psychological_support()
    assert before.endswith(f"-{NINH_BINH}")  # the province's unit, nobody nearer yet
    made = await admin.create(unit("test-psy-phu-ly", commune=PHU_LY))
    assert await psychological_support() == ["test-psy-phu-ly"]  # the nearest now
    r = await admin.send("POST", "/units/test-psy-phu-ly/status", {"status": "inactive"}, etag=f'"{made["version"]}"')
    assert r.status_code == 200, r.text
    assert await psychological_support() == [before]


# ---- imports ---------------------------------------------------------------------------------------------

def csv_of(*rows: dict) -> str:
    fields = ("id", "code", "name", "kind", "level", "parent_code", "province_code", "commune_code", "services",
              "status", "contacts")
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def csv_row(code: str, **fields) -> dict:
    return {"id": str(uuid.uuid4()), "code": code, "name": f"Đơn vị {code}", "kind": "legal_aid_centre",
            "level": "commune", "province_code": NINH_BINH, "commune_code": DUY_TIEN, "services": "legal_aid",
            "status": "active", "contacts": f"email:{code}@agencies.hotline111.example:1"} | fields


async def test_an_import_with_errors_names_every_row_and_writes_nothing(admin):
    content = csv_of(
        csv_row("test-imp-ok"),  # row 2, valid but not written: all or nothing
        csv_row("test-imp-commune", commune_code="99999"),  # row 3
        csv_row("test-imp-twice"), csv_row("test-imp-twice"),  # rows 4 and 5
        csv_row("test-imp-orphan", parent_code="test-imp-nobody"),  # row 6
    )
    for dry_run in (True, False):
        r = await admin.import_file(content, "csv", dry_run)
        assert r.status_code == 422, r.text
        assert problem_fields(r) == [(3, "commune_code"), (4, "code"), (5, "code"), (6, "parent_code")]
        assert r.json()["detail"].startswith("4 problem(s)")
        for code in ("test-imp-ok", "test-imp-commune", "test-imp-twice", "test-imp-orphan"):
            assert (await admin.get(f"/units/{code}")).status_code == 404


async def test_an_import_creates_and_updates_and_a_second_dry_run_finds_nothing_to_do(admin):
    parent, child = csv_row("test-imp-centre"), csv_row("test-imp-branch", parent_code="test-imp-centre")
    items = [{k: v for k, v in row.items() if k not in ("services", "contacts")}
             | {"services": [row["services"]], "contacts": [{"channel": "email", "address": f"{row['code']}@x.example"}]}
             for row in (parent, child)]
    content = yaml.safe_dump(items, allow_unicode=True)

    r = await admin.import_file(content, "yaml", dry_run=True)
    assert r.status_code == 200, r.text
    assert r.json() == {"dry_run": True, "created": 2, "updated": 0, "unchanged": 0, "changes": [
        {"row": 1, "code": "test-imp-centre", "change": "created"},
        {"row": 2, "code": "test-imp-branch", "change": "created"}]}
    assert (await admin.get("/units/test-imp-centre")).status_code == 404  # a dry run writes nothing

    r = await admin.import_file(content, "yaml", dry_run=False)
    assert (r.status_code, r.json()["created"]) == (200, 2), r.text
    branch = (await admin.get("/units/test-imp-branch")).json()
    assert (branch["id"], branch["parent_code"], branch["version"]) == (child["id"], "test-imp-centre", 1)
    r = await admin.import_file(content, "yaml", dry_run=True)
    assert (r.json()["created"], r.json()["updated"], r.json()["unchanged"]) == (0, 0, 2)

    items[1]["name"], items[0]["status"] = "Chi nhánh Duy Tiên", "temporarily_closed"
    r = await admin.import_file(yaml.safe_dump(items, allow_unicode=True), "yaml", dry_run=False)
    assert r.json()["changes"] == [{"row": 1, "code": "test-imp-centre", "change": "status_changed"},
                                   {"row": 2, "code": "test-imp-branch", "change": "updated"}]
    assert (await admin.get("/units/test-imp-branch")).json()["version"] == 2
    events = await unit_events(admin.stack, "test-imp-centre", 2)
    assert [(e["change"], e["version"], e["status"]) for e in events] == [
        ("created", 1, "active"), ("status_changed", 2, "temporarily_closed")]

    items[1]["id"] = str(uuid.uuid4())  # referrals name units by id: an import never changes it
    r = await admin.import_file(yaml.safe_dump(items, allow_unicode=True), "yaml", dry_run=False)
    assert r.status_code == 422 and problem_fields(r) == [(2, "id")]


async def test_the_exported_directory_imports_back_unchanged(admin, operator):
    await admin.create(unit("test-export", commune=DUY_TIEN, last_verified="2026-01-31",
                            opening_hours=["mon-wed 08:00-12:00", "thu 13:00-17:30", "sat 08:00-11:00"],
                            contacts=[{"channel": "sms", "address": "+840000099999", "preference": 1,
                                       "duty_24_7": True},
                                      {"channel": "email", "address": "a@agencies.hotline111.example",
                                       "preference": 2, "duty_24_7": False}]))
    for fmt, media in (("csv", "text/csv"), ("yaml", "application/yaml")):
        r = await operator.get("/export", format=fmt)
        assert r.status_code == 200 and r.headers["content-type"].startswith(media)
        assert "test-export" in r.text
        result = await admin.import_file(r.text, fmt, dry_run=fmt == "yaml")
        assert result.status_code == 200, result.text
        out = result.json()
        assert (out["created"], out["updated"], out["changes"]) == (0, 0, [])
        assert out["unchanged"] >= 6912
    assert (await admin.get("/units/test-export")).json()["version"] == 1  # the real import wrote nothing
