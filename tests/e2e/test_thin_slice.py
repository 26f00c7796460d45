"""A reported case travels intake → referral → notify (email) and into reporting, as real processes."""
import asyncio
import os
import signal
import time

import pytest

from tests.e2e.slice import emails_for, operator_headers, report, reported_count, wait_email, wait_emails
from tests.support import eventually


async def test_report_becomes_agency_email_and_reported_count(http, stack):
    before = await reported_count(http, stack, "01")
    case = await report(http, stack, commune_code="00070", narrative="Nguyen Thi B was taken to the border")
    # A normal case in Hoàn Kiếm: the commune police, and the commune People's Committee for reception.
    emails = await wait_emails(http, stack, case["case_number"], 2)
    assert sorted(e["rcpt_tos"][0] for e in emails) == ["peoples-committee-00070@agencies.hotline111.example",
                                                        "police-commune-00070@agencies.hotline111.example"]
    for email in emails:
        assert "Nguyen" not in email["body"] and "border" not in email["body"]  # no personal data in alerts

    async def counted():
        now = await reported_count(http, stack, "01")
        return now if now["cases_reported"] == before["cases_reported"] + 1 else None

    await eventually(counted)

    async def referred():
        now = await reported_count(http, stack, "01")
        return now["cases_referred"] == before["cases_referred"] + 1

    await eventually(referred)
    referrals = (await http.get(f"{stack.url('referral')}/referrals", params={"case_id": case["id"]},
                                headers=operator_headers(stack))).json()
    assert sorted((r["agency_unit_name"], tuple(r["rule_ids"])) for r in referrals) == [
        ("Commune Police of Phường Hoàn Kiếm, Thành phố Hà Nội", ("police-commune",)),
        ("People's Committee of Phường Hoàn Kiếm, Thành phố Hà Nội", ("peoples-committee",))]
    # One trace from the HTTP request, through both Kafka hops, to the SMTP send and the SMS gateway; each SMS
    # is delivered when the gateway's receipt comes back.
    async def all_delivered():
        notes = (await http.get(f"{stack.url('notify')}/notifications", params={"case_id": case["id"]},
                                headers=operator_headers(stack))).json()["items"]
        return notes if len(notes) == 4 and all(n["status"] == "delivered" for n in notes) else None

    notes = await eventually(all_delivered, 30)
    assert sorted((n["channel"], n["trace_id"]) for n in notes) == (
        [("email", case["trace_id"])] * 2 + [("sms", case["trace_id"])] * 2)
    sms = [n for n in notes if n["channel"] == "sms"]
    assert {n["provider"] for n in sms} == {"local-generic"} and all(n["provider_ref"] for n in sms)
    assert {(n["encoding"], n["language"]) for n in sms} == {("ucs2", "vi")} and all(n["segments"] for n in sms)

    # The case follows its referrals: intake moved it from open to referred.
    async def case_referred():
        now = (await http.get(f"{stack.url('intake')}/cases/{case['id']}", headers=operator_headers(stack))).json()
        return now if now["status"] == "referred" else None

    assert (await eventually(case_referred))["version"] == 2


async def test_reports_taken_while_broker_is_frozen_each_take_effect_exactly_once(http, stack):
    if stack.infra.broker is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS points at an external broker; this test freezes the local one")
    province, n = "79", 8  # Hồ Chí Minh City: used by no other test
    before = await reported_count(http, stack, province)
    pid = stack.infra.broker.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        cases = [await report(http, stack, province_code=province) for _ in range(n)]
        assert time.monotonic() - started < 5  # the API keeps taking work without the broker
        await asyncio.sleep(1)
    finally:
        os.kill(pid, signal.SIGCONT)

    for case in cases:
        await wait_email(http, stack, case["case_number"], timeout=90)

    async def all_counted():
        now = await reported_count(http, stack, province)
        return now["cases_reported"] - before["cases_reported"] == n and \
            now["cases_referred"] - before["cases_referred"] == n

    await eventually(all_counted, 60)
    await asyncio.sleep(3)  # let any late redelivery land before counting effects
    now = await reported_count(http, stack, province)
    assert now["cases_reported"] - before["cases_reported"] == n
    for case in cases:
        assert len(await emails_for(http, stack, case["case_number"])) == 1
        referrals = (await http.get(f"{stack.url('referral')}/referrals", params={"case_id": case["id"]},
                                    headers=operator_headers(stack))).json()
        assert len(referrals) == 1


async def test_idempotency_key_makes_a_retried_report_one_case(http, stack):
    body = {"province_code": "48"}
    headers = {**operator_headers(stack), "Idempotency-Key": "retry-1"}
    first = await http.post(f"{stack.url('intake')}/cases", json=body, headers=headers)
    again = await http.post(f"{stack.url('intake')}/cases", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    # Đà Nẵng borders Laos: the province police (no commune given) and the Border Guard, one email each.
    await wait_emails(http, stack, first.json()["case_number"], 2)
    await asyncio.sleep(1)
    emails = await emails_for(http, stack, first.json()["case_number"])
    assert sorted(e["rcpt_tos"][0].split("@")[0] for e in emails) == ["border-guard-48", "police-province-48"]
