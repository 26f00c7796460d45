"""Bad input, unknown routes, health, readiness and metrics on the running services."""
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.e2e.slice import operator_headers

SERVICES = ("intake", "referral", "notify", "reporting")


async def case_rows(stack) -> int:
    engine = create_async_engine(stack.database_url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(text("SELECT (SELECT count(*) FROM intake.cases) + "
                                          "(SELECT count(*) FROM intake.outbox)"))
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"province_code": "99"}, "province_code"),
        ({"province_code": "1"}, "province_code"),
        ({}, "province_code"),
        ({"province_code": "01", "commune_code": "26734"}, "commune_code"),  # a ward of another province
        ({"province_code": "01", "channel": "pigeon"}, "channel"),
        ({"province_code": "01", "surprise": 1}, "surprise"),
        ({"province_code": "01", "immediate_danger": True, "urgency": "normal"}, "urgency"),
        ({"province_code": "01", "victims": [{"age": -1}]}, "victims.0.age"),
        ({"province_code": "01", "victims": [{"age": 400}]}, "victims.0.age"),
        ({"province_code": "01", "victims": [{"age": 15, "is_child": False}]}, "victims.0.is_child"),
        ({"province_code": "01", "reported_at": "2999-01-01T00:00:00Z"}, "reported_at"),
        ({"province_code": "01", "narrative": "x" * 20001}, "narrative"),
        ({"province_code": "01", "exploitation": ["sightseeing"]}, "exploitation.0"),
    ],
)
async def test_invalid_report_is_a_problem_naming_the_field_and_writes_nothing(http, stack, body, field):
    before = await case_rows(stack)
    response = await http.post(f"{stack.url('intake')}/cases", json=body, headers=operator_headers(stack))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["title"] and problem["type"].startswith("https://")
    assert field in [e["field"] for e in problem["errors"]]
    assert field in problem["detail"]
    assert await case_rows(stack) == before


async def test_malformed_json_is_a_problem(http, stack):
    response = await http.post(f"{stack.url('intake')}/cases", content=b'{"province_code": ',
                               headers={"content-type": "application/json", **operator_headers(stack)})
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "json_invalid"


async def test_problem_never_echoes_personal_data(http, stack):
    response = await http.post(f"{stack.url('intake')}/cases", headers=operator_headers(stack),
                               json={"province_code": "01", "narrative": "x" * 20001})
    assert response.status_code == 422
    assert "xxxx" not in response.text


@pytest.mark.parametrize("service", SERVICES)
async def test_unknown_route_is_json_404(http, stack, service):
    response = await http.get(f"{stack.url(service)}/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


@pytest.mark.parametrize("service", SERVICES)
async def test_health_readiness_and_metrics(http, stack, service):
    assert (await http.get(f"{stack.url(service)}/healthz")).json()["status"] == "ok"
    ready = await http.get(f"{stack.url(service)}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    metrics = (await http.get(f"{stack.url(service)}/metrics")).text
    for name in ("http_request_duration_seconds", "events_consumed_total", "events_produced_total",
                 "outbox_backlog", "consumer_lag"):
        assert f"# TYPE {name}" in metrics or f"# HELP {name}" in metrics


async def test_openapi_docs_are_served(http, stack):
    for service in SERVICES:
        assert (await http.get(f"{stack.url(service)}/docs")).status_code == 200
        assert (await http.get(f"{stack.url(service)}/openapi.json")).json()["info"]["title"]
