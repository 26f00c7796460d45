"""Services stop gracefully, and an SMTP outage delays alerts without losing them."""
import asyncio
import signal

from tests.e2e.slice import operator_headers, report, reported_count, wait_email
from tests.support import eventually


async def notifications(http, stack, case_id: str) -> list[dict]:
    """The case's emails (its SMS go to the local gateway)."""
    notes = (await http.get(f"{stack.url('notify')}/notifications", params={"case_id": case_id},
                            headers=operator_headers(stack))).json()["items"]
    return [n for n in notes if n["channel"] == "email"]


async def test_alert_is_retried_through_an_smtp_outage_then_delivered(http, stack):
    supervisor = stack.services.supervisor
    supervisor.stop("smtp")
    try:
        case = await report(http, stack, province_code="31")

        async def retrying():
            notes = await notifications(http, stack, case["id"])
            return notes if notes and notes[0]["attempts"] >= 2 else None

        notes = await eventually(retrying, 30)
        assert notes[0]["status"] == "sending"  # not terminal: it will be tried again
    finally:
        smtp = supervisor.children["smtp"]
        supervisor.start("smtp", smtp.argv, smtp.env)
        supervisor.wait_ready("smtp", f"{stack.services.smtp_http_url}/healthz", 30)
    await wait_email(http, stack, case["case_number"], timeout=60)

    async def delivered():
        notes = await notifications(http, stack, case["id"])
        return notes[0]["status"] == "delivered" and notes[0]

    note = await eventually(delivered, 10)
    assert note["attempts"] >= 3 and note["provider_code"] == "250"


async def test_sigterm_stops_a_service_cleanly_and_it_resumes(http, stack):
    supervisor = stack.services.supervisor
    code = await asyncio.to_thread(supervisor.stop, "reporting", 30)
    # uvicorn re-raises SIGTERM once its shutdown is done, so "clean" is that signal, not a SIGKILL.
    assert code in (0, -signal.SIGTERM)
    log = supervisor.children["reporting"].log_path.read_text()
    assert '"service_stopping"' in log and '"service_stopped"' in log and "Traceback" not in log
    # Work done while it was away is picked up from the committed offsets when it returns.
    case = await report(http, stack, province_code="33")
    child = supervisor.children["reporting"]
    supervisor.start("reporting", child.argv, child.env)
    await asyncio.to_thread(supervisor.wait_ready, "reporting", f"{stack.url('reporting')}/readyz", 120)

    async def counted():
        return (await reported_count(http, stack, "33"))["cases_reported"] >= 1

    await eventually(counted, 30)
    await wait_email(http, stack, case["case_number"])
