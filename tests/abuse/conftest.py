"""Fixtures shared by the abuse tests (authorisation, injection, personal-data leaks, OpenAPI fuzzing,
poison events). Keep to what every one of them may use."""
import httpx
import pytest


@pytest.fixture
async def http():
    """A plain HTTP client for the running stack (no credentials: each request brings its own)."""
    async with httpx.AsyncClient(timeout=30) as client:
        yield client
