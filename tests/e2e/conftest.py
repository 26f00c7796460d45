import httpx
import pytest


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=30) as client:
        yield client
