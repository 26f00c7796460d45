"""While PostgreSQL restarts or fails over, a request gets a 503 problem with Retry-After (clients retry with
their Idempotency-Key), not a 500; a statement that fails for its own reasons is still a server error."""
import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, OperationalError
from structlog.testing import capture_logs

from runtime.db import log_failed_tick
from runtime.logging import get_logger
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
    asyncpg.InterfaceError("connection is closed"),  # a raw connection (a hot path's) the restart cut
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
], ids=["refused", "starting-up", "invalidated", "raw-closed", "raw-cut-while-idle"])
async def test_an_unreachable_database_is_a_503_to_retry(exc):
    transport = httpx.ASGITransport(app=app_raising(exc))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        r = await client.get("/cases")
    assert (r.status_code, r.headers["content-type"], r.headers["retry-after"]) == (503, PROBLEM_JSON, "2")
    assert r.json()["type"].endswith("/database-unavailable")


@pytest.mark.parametrize("exc", [
    DBAPIError("INSERT ...", {}, asyncpg.UniqueViolationError("duplicate key")),
    asyncpg.InterfaceError("cannot use Connection.transaction() in a manually started transaction"),
    asyncpg.InternalClientError("an unexpected client error"),
], ids=["statement", "driver-misuse", "driver-bug"])
async def test_a_failed_statement_stays_a_server_error(exc):
    transport = httpx.ASGITransport(app=app_raising(exc), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        assert (await client.get("/cases")).status_code == 500


def test_a_loop_tick_that_met_no_database_is_a_warning_and_any_other_failure_an_error_with_its_stack():
    log = get_logger(__name__)
    with capture_logs() as logs:
        log_failed_tick(log, "scan_failed", asyncpg.CannotConnectNowError("the database system is starting up"))
        try:
            raise ZeroDivisionError("a bug")
        except ZeroDivisionError as exc:
            log_failed_tick(log, "scan_failed", exc)
    away, bug = logs
    assert (away["log_level"], away["error"], away["database"]) == ("warning", "CannotConnectNowError", "unreachable")
    assert "exc_info" not in away
    assert bug["log_level"] == "error" and isinstance(bug["exc_info"], ZeroDivisionError)
