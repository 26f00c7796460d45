"""A raw connection cut under a unit of work (a PostgreSQL restart, a terminated backend) leaves the pool with
the error, instead of being handed to every later request and failing each of them."""
import asyncpg
import pytest

from runtime.db import asyncpg_dsn, database_unreachable
from tests.runtime.scratch import make_scratch


@pytest.fixture
async def scratch(stack):
    s = await make_scratch(stack.database_url, stack.bootstrap)
    yield s
    await s.drop()


async def backend_of(scratch) -> int:
    """One unit of work's statement on the raw driver (the hot path's way): the server process it ran on."""
    async with scratch.uow() as uow:
        return await (await uow.driver()).fetchval("SELECT pg_backend_pid()")


async def test_a_raw_connection_cut_under_a_unit_of_work_is_not_handed_out_again(stack, scratch):
    pids = {await backend_of(scratch) for _ in range(3)}
    assert len(pids) == 1  # one after another, the pool hands out the same connection
    killer = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", pids.pop())
    finally:
        await killer.close()

    with pytest.raises(Exception) as cut:  # the one request that was using it when it was cut
        await backend_of(scratch)
    assert database_unreachable(cut.value)
    for _ in range(3):  # the next ones get a live connection
        assert isinstance(await backend_of(scratch), int)
