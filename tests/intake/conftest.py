import httpx
import pytest


class Api:
    """intake's API as one role sees it."""

    def __init__(self, client: httpx.AsyncClient, base: str, token: str | None):
        self.client, self.base = client, base
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def request(self, method: str, path: str, **kw) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return await self.client.request(method, self.base + path, headers=headers, **kw)

    async def post(self, path, **kw):
        return await self.request("POST", path, **kw)

    async def get(self, path, **kw):
        return await self.request("GET", path, **kw)

    async def patch(self, path, **kw):
        return await self.request("PATCH", path, **kw)


@pytest.fixture
async def client():
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


@pytest.fixture
def as_role(stack, client):
    def make(*roles: str, sub: str = "op-test") -> Api:
        return Api(client, stack.url("intake"), stack.token(*roles, sub=sub) if roles else None)

    return make


@pytest.fixture
def operator(as_role) -> Api:
    return as_role("operator", sub="op-1")
