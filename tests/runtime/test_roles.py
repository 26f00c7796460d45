"""SERVICE_ROLE splits one service into the Deployments Kubernetes scales apart: `api` serves HTTP,
`worker` consumes and runs the background loops, both relay their outbox; `all` (make run) is both."""
import httpx
import pytest

from services.reporting.app import create_app
from services.reporting.settings import ReportingSettings
from tests.support import own_database


@pytest.fixture(scope="module")
async def reporting_db(stack):
    return await own_database(stack, "reporting")


@pytest.mark.parametrize("role, serves_api, consumes", [("api", True, False), ("worker", False, True),
                                                        ("all", True, True)])
async def test_a_role_runs_only_its_part(stack, reporting_db, monkeypatch, role, serves_api, consumes):
    monkeypatch.setenv("AUTH_MODE", "hs256")
    monkeypatch.setenv("AUTH_HS256_SECRET", stack.auth_secret)
    app = create_app(ReportingSettings(database_url=reporting_db, kafka_bootstrap_servers=stack.bootstrap,
                                       service_role=role))
    runtime = app.state.runtime
    await runtime.start()
    try:
        running = set(runtime.running)
        assert "lag-client" in running  # what the API needs runs in every role (reporting has no outbox to relay)
        assert ("reporting.projections" in running) == consumes
        headers = {"Authorization": f"Bearer {stack.token('analyst')}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client:
            summary = await client.get("/v1/stats/summary", headers=headers)
            assert summary.status_code == (200 if serves_api else 404)
            checks = (await client.get("/readyz")).json()["checks"]
            assert ("consumer:reporting.projections" in checks) == consumes
            assert (await client.get("/metrics")).status_code == 200
    finally:
        await runtime.stop()
        await app.state.end_offsets.close()
