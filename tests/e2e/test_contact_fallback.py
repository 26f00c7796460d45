"""A failed alert moves on to the unit's next contact, through the running services: the SMS gateway refuses
the unit's number for good, so referral falls back to its next contact, an email, and notify sends it the
same alert. The unit's usual email is taken out for the test: alerted at once beside the SMS, its delivery
could tell the unit first, and then there is rightly nothing to fall back for."""
import pytest

from tests.e2e.slice import emails_for, operator_headers, report
from tests.support import eventually

UNIT = "police-province-68"  # a province no other test reports in
DUTY = f"{UNIT}-duty@agencies.hotline111.example"


@pytest.fixture
async def unit_with_a_duty_email(http, stack):
    url, headers = f"{stack.url('referral')}/directory/units/{UNIT}", stack.auth_headers("admin")
    r = await http.get(url, headers=headers)
    before = {k: v for k, v in r.json().items() if k not in ("id", "code", "version", "updated_at")}
    sms = [c for c in before["contacts"] if c["channel"] == "sms"]
    contacts = [*sms, {"channel": "email", "address": DUTY, "preference": 3, "duty_24_7": True}]
    r = await http.put(url, json=before | {"contacts": contacts}, headers={**headers, "If-Match": r.headers["etag"]})
    assert r.status_code == 200, r.text
    (number,) = [c["address"] for c in sms]
    control = f"{stack.sms_url}/control"
    assert (await http.post(control, json={"to": number, "mode": "reject_4xx"})).status_code < 300
    yield number
    await http.post(control, json={"to": number, "mode": "ok"})
    r = await http.put(url, json=before, headers={**headers, "If-Match": r.headers["etag"]})
    assert r.status_code == 200, r.text


async def test_a_failed_sms_alert_moves_on_to_the_next_email(http, stack, unit_with_a_duty_email):
    case = await report(http, stack, province_code="68")

    async def duty_email():
        to = sorted(e["rcpt_tos"][0] for e in await emails_for(http, stack, case["case_number"]))
        return [t for t in to if t.startswith(UNIT)] if DUTY in to else None

    assert await eventually(duty_email, 30) == [DUTY]  # the unit's usual email, taken out, is not alerted
    notes = (await http.get(f"{stack.url('notify')}/notifications", params={"case_id": case["id"]},
                            headers=operator_headers(stack))).json()["items"]
    duty = next(n for n in notes if n["recipient"] == DUTY)
    assert duty["trace_id"] == case["trace_id"]  # the fallback stays in the report's trace
    (sms,) = [n for n in notes if n["recipient"] == unit_with_a_duty_email]
    assert (sms["channel"], sms["status"], sms["provider_code"]) == ("sms", "permanent-failure", "invalid_number")
