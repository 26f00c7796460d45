"""Steps of the thin slice, as a client of the running services sees them."""
import httpx

from tests.support import eventually


def operator_headers(stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token('operator', sub='op-e2e')}"}


async def report(http: httpx.AsyncClient, stack, **fields) -> dict:
    body = {"province_code": "01", "channel": "phone"} | fields
    response = await http.post(f"{stack.url('intake')}/cases", json=body, headers=operator_headers(stack))
    assert response.status_code == 201, response.text
    return response.json() | {"trace_id": response.headers.get("x-trace-id")}


async def emails_for(http: httpx.AsyncClient, stack, case_number: str) -> list[dict]:
    messages = (await http.get(stack.smtp_messages_url)).json()
    return [m for m in messages if case_number in m["subject"]]


async def reported_count(http: httpx.AsyncClient, stack, province: str) -> dict:
    """Cases reported and referred in `province`, all time, exact (a reporting admin lifts suppression)."""
    headers = {"Authorization": f"Bearer {stack.token('analyst', 'admin', sub='rep-e2e')}"}
    response = await http.get(f"{stack.url('reporting')}/v1/stats/summary", headers=headers,
                              params={"province": province, "suppress": "false"})
    assert response.status_code == 200, response.text
    figures = {row["figure"]: row["value"] for row in response.json()["rows"]}
    return {"cases_reported": figures["cases_reported"], "cases_referred": figures["cases_referred"]}


async def wait_emails(http, stack, case_number: str, count: int = 1, timeout: float = 20.0) -> list[dict]:
    """The case's first `count` emails, once that many have arrived."""
    async def arrived():
        found = await emails_for(http, stack, case_number)
        return found if len(found) >= count else None

    return await eventually(arrived, timeout)


async def wait_email(http, stack, case_number: str, timeout: float = 20.0) -> dict:
    return (await wait_emails(http, stack, case_number, 1, timeout))[0]
