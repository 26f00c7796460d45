"""While PostgreSQL restarts or fails over, a request gets a 503 problem with Retry-After (clients retry with
their Idempotency-Key), not a 500; a statement that fails for its own reasons is still a server error."""
import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, OperationalError

from runtime.problems import PROBLEM_JSON, install_problem_handlers


def app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/cases")
    async def cases():
        raise exc

    return app


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connection refused"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    OperationalError("SELECT 1", {}, ConnectionResetError(104, "reset"), connection_invalidated=True),
], ids=["refused", "starting-up", "invalidated"])
async def test_an_unreachable_database_is_a_503_to_retry(exc):
    transport = httpx.ASGITransport(app=app_raising(exc))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        r = await client.get("/cases")
    assert (r.status_code, r.headers["content-type"], r.headers["retry-after"]) == (503, PROBLEM_JSON, "2")
    assert r.json()["type"].endswith("/database-unavailable")


async def test_a_failed_statement_stays_a_server_error():
    exc = DBAPIError("INSERT ...", {}, asyncpg.UniqueViolationError("duplicate key"))
    transport = httpx.ASGITransport(app=app_raising(exc), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        assert (await client.get("/cases")).status_code == 500
