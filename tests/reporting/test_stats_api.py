"""The analyst API in-process, on a reporting database of its own: who may read, what suppression
publishes, CSV, lag, and problems that name the parameter."""
import csv
import io
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from runtime.db import create_engine
from services.reporting.app import create_app
from services.reporting.models import audit_log
from services.reporting.privacy.suppression import CELL, Entry, publish, recoverable
from services.reporting.settings import ReportingSettings
from tests.reporting.test_projections import T0, apply, case_events, contact
from tests.support import own_database

DAY = T0.date() + timedelta(days=1)  # T0 is the 10th in Vietnam


@pytest.fixture(scope="module")
async def reporting(stack):
    url = await own_database(stack, "reporting")
    engine = create_engine(url, 2)
    # Province 01: 12 phone and 3 chat contacts; province 79: 9 phone and 6 chat (k = 5).
    await apply(engine, [contact(T0) for _ in range(12)] + [contact(T0, channel="chat") for _ in range(3)] +
                [contact(T0, caller_province_code="79") for _ in range(9)] +
                [contact(T0, caller_province_code="79", channel="chat") for _ in range(6)] +
                [event for _ in range(3) for event in case_events(uuid.uuid4())])  # 3 cases, 2 victims each
    yield url, engine
    await engine.dispose()


@pytest.fixture
async def api(stack, reporting, monkeypatch):
    monkeypatch.setenv("AUTH_MODE", "hs256")
    monkeypatch.setenv("AUTH_HS256_SECRET", stack.auth_secret)
    app = create_app(ReportingSettings(database_url=reporting[0], kafka_bootstrap_servers=stack.bootstrap))

    def as_(*roles: str, sub: str = "ana-test") -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {stack.token(*roles, sub=sub)}"} if roles else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reporting", headers=headers)

    yield as_
    await app.state.end_offsets.close()


BY_PROVINCE_AND_CHANNEL = {"from": DAY.isoformat(), "to": DAY.isoformat(), "group": "all", "by": "province,channel"}


async def test_only_analysts_read_and_only_admins_lift_suppression_which_is_audited(api, reporting):
    async with api() as anonymous, api("operator") as operator, api("analyst") as analyst, \
            api("analyst", "admin", sub="rep-audit") as admin:
        assert (await anonymous.get("/v1/stats/summary")).status_code == 401
        assert (await operator.get("/v1/stats/summary")).status_code == 403
        assert (await analyst.get("/v1/stats/summary")).status_code == 200
        lifted = await analyst.get("/v1/stats/contacts", params={"suppress": "false"})
        assert lifted.status_code == 403 and "admin" in lifted.json()["detail"]
        assert (await admin.get("/v1/stats/contacts", params={**BY_PROVINCE_AND_CHANNEL, "suppress": "false"})
                ).status_code == 200
    async with reporting[1].connect() as conn:
        audited = (await conn.execute(select(audit_log).where(audit_log.c.subject == "rep-audit"))).mappings().all()
    assert len(audited) == 1 and audited[0]["action"] == "unsuppressed-read"
    assert "suppress=false" in audited[0]["query"] and audited[0]["path"] == "/v1/stats/contacts"


async def test_a_small_cell_is_suppressed_with_a_complement_and_cannot_be_worked_out(api):
    async with api("analyst") as analyst:
        body = (await analyst.get("/v1/stats/contacts", params=BY_PROVINCE_AND_CHANNEL)).json()
    keys = [(r["period"], r["province"], r["channel"]) for r in body["rows"]]
    assert len(keys) == len(set(keys)) == 5  # four cells and the grand total: one row of cells has no other margin
    cells = {(r["province"], r["channel"]): r["value"] for r in body["rows"] if r["period"] == "all"}
    assert cells[("01", "chat")] is None  # 3 < k
    assert body["suppression"]["primary"] == 1 and body["suppression"]["complementary"] >= 1
    # Rebuild the table the answer describes and ask the exact auditor what an attacker could recover.
    true = [[3, 12, 6, 9]]  # categories in the answer's order: (01, chat), (01, phone), (79, chat), (79, phone)
    order = [("01", "chat"), ("01", "phone"), ("79", "chat"), ("79", "phone")]
    assert [r["value"] is None for r in body["rows"] if (r["province"], r["channel"]) in order] == \
        [cells[c] is None for c in order]
    hidden = [(0, j) for j, c in enumerate(order) if cells[c] is None]
    published = publish(true, [Entry(CELL, i, j) for i, j in hidden], k=5)
    assert recoverable(true, published) == []
    published_values = [r["value"] for r in body["rows"] if r["value"] is not None]
    assert all(v >= 5 for v in published_values)


async def test_csv_carries_the_same_rows_and_the_lag_rides_in_headers(api):
    async with api("analyst") as analyst:
        as_json = await analyst.get("/v1/stats/contacts", params=BY_PROVINCE_AND_CHANNEL)
        as_csv = await analyst.get("/v1/stats/contacts", params=BY_PROVINCE_AND_CHANNEL,
                                   headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    expected = [{k: ("suppressed" if v is None else str(v).lower() if isinstance(v, bool) else str(v))
                 for k, v in row.items()} for row in as_json.json()["rows"]]
    assert rows == expected
    lag = as_json.json()["lag"]
    assert set(lag) == {"events_behind", "last_event_at", "checked_at", "rebuilding"}
    assert "x-projection-checked-at" in as_csv.headers


@pytest.mark.parametrize("params, field", [
    ({"by": "caller_name"}, "by"),
    ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
    ({"province": "99"}, "province"),
    ({"category": "forced_labour"}, "category"),  # for contacts, the category is the contact type
    ({"urgency": "high"}, "urgency"),  # contacts have no urgency
    ({"group": "day", "from": "2000-01-01"}, "group"),  # too many periods
    ({"region": "east"}, "region"),
    ({"by": "a,b,c,d,e"}, "by"),
])
async def test_bad_parameters_get_a_problem_naming_them(api, params, field):
    async with api("analyst") as analyst:
        response = await analyst.get("/v1/stats/contacts", params=params)
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_an_unknown_measure_is_named(api):
    async with api("analyst") as analyst:
        response = await analyst.get(f"/v1/stats/{uuid.uuid4().hex[:6]}")
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "measure"


async def test_the_ctdc_export_suppresses_what_it_cannot_make_k_anonymous_and_says_so(api):
    async with api("analyst") as analyst:
        body = (await analyst.get("/v1/export/ctdc", params={"from": DAY.isoformat(), "to": DAY.isoformat()})).json()
        as_csv = await analyst.get("/v1/export/ctdc", params={"format": "csv"})
        lifted = await analyst.get("/v1/export/ctdc", params={"suppress": "false"})
    report = body["report"]
    assert (report["k"], report["records_in"], report["records_suppressed"], body["rows"]) == (11, 6, 6, [])
    assert as_csv.text.splitlines()[0].split(",")[:4] == ["yearOfRegistration", "Datasource", "gender", "ageBroad"]
    assert lifted.status_code in (403, 422)
