"""The pieces the fault suites stand on, without a stack (these run in `make test`): the SMS gateway's
seeded share of refusals, and which errors mean "the database is away" (a consumer then waits instead of
dead-lettering, the dispatcher keeps a provider's answer until it can record it)."""
import asyncpg
import httpx
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from devstack.sms_gateway import Gateway, GatewayCredentials, create_app
from runtime.db import database_unreachable


async def _sends(http: httpx.AsyncClient, n: int, to: str = "+84000001234") -> list[int]:
    return [(await http.post("/messages", json={"to": to, "body": f"m{i}"})).status_code for i in range(n)]


async def test_the_gateway_refuses_a_seeded_share_of_sends():
    gw = Gateway(GatewayCredentials())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(gw)), base_url="http://gw") as http:
        assert (await http.post("/control", json={"fail_ratio": 0.5, "seed": 7})).status_code == 200
        first = await _sends(http, 200)
        assert set(first) == {202, 503} and 60 < first.count(503) < 140
        assert (await http.get("/control")).json()["refused_by_ratio"] == first.count(503)
        assert len((await http.get("/messages")).json()) == first.count(202)  # only what it took is listed
        await http.post("/control", json={"seed": 7})
        assert await _sends(http, 200) == first  # the same seed, the same refusals
        await http.post("/control", json={"fail_ratio": 0.0})
        assert set(await _sends(http, 20)) == {202}
        # For one number only; every other number is served.
        await http.post("/control", json={"to": "+84000009999", "fail_ratio": 1.0})
        assert set(await _sends(http, 5, "+84000009999")) == {503} and set(await _sends(http, 5)) == {202}
        reset = (await http.post("/control/reset")).json()
        assert reset["refused_by_ratio"] == 0 and reset["global"]["fail_ratio"] == 0.0
        assert (await http.post("/control", json={"fail_ratio": 1.5})).status_code == 422


def _wrapped(orig: BaseException, cls=DBAPIError, invalidated: bool = False) -> DBAPIError:
    return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(("error", "unreachable"), [
    (ConnectionRefusedError(111, "Connection refused"), True),
    (ConnectionResetError(), True),
    (asyncpg.CannotConnectNowError("the database system is starting up"), True),
    (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),
    (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"), True),
    (asyncpg.InterfaceError("cannot perform operation: connection is closed"), True),
    (_wrapped(Exception("whatever the driver said"), invalidated=True), True),
    (_wrapped(asyncpg.CannotConnectNowError("starting up")), True),
    # A statement that failed is the work's own failure: retried a few times, then dead-lettered.
    (_wrapped(asyncpg.UniqueViolationError("duplicate key"), IntegrityError), False),
    (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), False),
    (asyncpg.DataError("invalid input for query argument"), False),
    (ValueError("a bad event"), False),
    (TimeoutError(), False),
])
def test_which_errors_say_the_database_is_away(error, unreachable):
    assert database_unreachable(error) is unreachable


def test_an_error_raised_from_a_lost_connection_is_one_too():
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise RuntimeError("could not load the directory") from exc
    except RuntimeError as exc:
        assert database_unreachable(exc)
