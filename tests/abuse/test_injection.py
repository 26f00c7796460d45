"""SQL, template and script injection in every free-text field intake takes: it is data, and stays data.

One contact and one case carry the payloads in every free-text field of intake's models (the caller's name
and notes; the case's narrative, urgency reason, place abroad, location, victims' names and ethnicity,
suspects' descriptions; a note). They must come back byte for byte from the audited personal-data reads,
the tables must still be there, and the alerts notify renders for the case (sandboxed Jinja2) must carry
none of that free text, evaluated or not: the case's facts reach templates as codes only. Template
variables that do hold text (a unit's name, say) are printed, never evaluated, which a preview shows.
A handful of requests in all.
"""
import random
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from runtime.db import asyncpg_dsn
from tests.e2e.slice import operator_headers, report, wait_emails
from tests.support import eventually

TAG = f"Zq{uuid.uuid4().hex[:8]}"  # makes every payload of this run findable, and nothing else
# What evaluating the payloads would print, and the payloads do not hold literally. (That {{7*7}} did not
# become 49 shows in the byte-for-byte reads.)
EVALUATED = [f"{TAG}EVAL", f"{TAG}LOOP{TAG}LOOP", f"{TAG}EL"]
PAYLOADS = [
    f"'; DROP TABLE cases;-- {TAG}",
    f'" OR 1=1 -- {TAG}',
    f"{TAG}') OR ('1'='1",
    f"{TAG}; SELECT pg_sleep(10);--",
    f"{TAG} {{{{7*7}}}}",
    f"{{{{ '{TAG}' ~ 'EVAL' }}}}",
    f"{{% for x in range(9) %}}{TAG}LOOP{{% endfor %}}",
    f"{{{{ ''.__class__.__mro__[1].__subclasses__() }}}} {TAG}",
    f"${{7*7}} ${{'{TAG}' + 'EL'}} #{{7*7}} {TAG}",
    f"<script>alert('{TAG}')</script>",
    f"{TAG} %s%s%n %(x)s {{0}} \\x00",
    f"{TAG} \u202eRTL\u202c \u200d\U0001F469\u200d\U0001F467 e\u0301 Ệ 中文 عربى",
]
LONG = (f"{TAG} " + "Đường dây nóng 111 \u202e\U0001F6A8 ' OR 1=1 -- {{7*7}} ${7*7} 中文 " * 400)[:20000]
NUL = f"{TAG} before\u0000after"
PHONE = "09" + "".join(random.choices("0123456789", k=8))


def _ago(seconds: int) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


@pytest.fixture(scope="module")
async def injected(stack):
    """The contact and case carrying the payloads, as sent: {contact, contact_id, case_body, case, note}."""
    async with httpx.AsyncClient(timeout=30) as http:
        staff = operator_headers(stack)
        contact = {"channel": "phone", "contact_type": "information_report", "started_at": _ago(600),
                   "ended_at": _ago(120), "caller_name": PAYLOADS[0][:200], "caller_phone": PHONE,
                   "notes": "\n".join(PAYLOADS)}
        r = await http.post(f"{stack.url('intake')}/contacts", json=contact, headers=staff)
        assert r.status_code == 201, r.text
        contact_id = r.json()["id"]
        case_body = {
            "province_code": "01", "commune_code": "00070", "contact_id": contact_id,
            "narrative": LONG, "urgency_reason": PAYLOADS[1], "abroad_place": PAYLOADS[2][:200],
            "location_text": "\n".join(PAYLOADS[3:9]),
            "victims": [{"name": p[:200], "sex": "female", "age": 16, "ethnicity": p[:100], "needs": ["shelter"]}
                        for p in PAYLOADS[4:8]],
            "traffickers": [{"description": p} for p in PAYLOADS[8:]],
            "exploitation": ["forced_marriage"],
        }
        case = await report(http, stack, **case_body)
        note = "\n".join(reversed(PAYLOADS))
        r = await http.post(f"{stack.url('intake')}/cases/{case['id']}/notes", json={"text": note}, headers=staff)
        assert r.status_code == 201, r.text
        return {"contact": contact, "contact_id": contact_id, "case_body": case_body, "case": case, "note": note}


async def test_free_text_comes_back_unchanged(http, stack, injected):
    staff = operator_headers(stack)
    intake = stack.url("intake")
    case_id = injected["case"]["id"]
    body = injected["case_body"]

    personal = await http.get(f"{intake}/cases/{case_id}/personal-data", headers=staff)
    assert personal.status_code == 200, personal.text
    data = personal.json()
    assert data["narrative"] == LONG
    assert (data["urgency_reason"], data["abroad_place"], data["location_text"]) == (
        body["urgency_reason"], body["abroad_place"], body["location_text"])
    sent = [(v["name"], v["ethnicity"]) for v in body["victims"]]
    assert [(v["name"], v["ethnicity"]) for v in data["victims"]] == sent
    assert [t["description"] for t in data["traffickers"]] == [t["description"] for t in body["traffickers"]]
    assert injected["note"] in [n["text"] for n in data["notes"]]

    caller = await http.get(f"{intake}/contacts/{injected['contact_id']}/personal-data", headers=staff)
    assert caller.status_code == 200, caller.text
    assert caller.json() == {"caller_name": injected["contact"]["caller_name"], "caller_phone": PHONE,
                             "notes": injected["contact"]["notes"]}

    # the case without personal data shows none of it, and nothing evaluated
    plain = await http.get(f"{intake}/cases/{case_id}", headers=staff)
    assert plain.status_code == 200 and TAG not in plain.text
    for answer in (personal.text, caller.text, plain.text):
        for evaluated in EVALUATED:
            assert evaluated not in answer


async def test_a_nul_character_is_kept_or_refused_never_a_failure(http, stack, injected):
    staff = operator_headers(stack)
    case_id = injected["case"]["id"]
    r = await http.post(f"{stack.url('intake')}/cases/{case_id}/notes", json={"text": NUL}, headers=staff)
    assert r.status_code in (201, 422), r.text
    if r.status_code == 201:
        notes = (await http.get(f"{stack.url('intake')}/cases/{case_id}/personal-data", headers=staff)).json()["notes"]
        assert NUL in [n["text"] for n in notes]
    else:
        assert "before" not in r.text  # a refusal does not echo the input


async def test_injection_in_filters_and_a_phone_number_is_data_or_refused(http, stack, injected):
    staff = operator_headers(stack)
    intake = stack.url("intake")
    sql = PAYLOADS[0]
    for path, params, headers in (
        ("/cases", {"operator": sql}, staff),
        ("/contacts", {"operator": PAYLOADS[1]}, staff),
        ("/audit", {"actor": PAYLOADS[2]}, {"Authorization": f"Bearer {stack.token('auditor', sub='abuse-aud')}"}),
    ):
        r = await http.get(intake + path, params=params, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["items"] == [], f"{path}?{params} matched rows: the filter is not a bound value"
    contact = injected["contact"] | {"caller_phone": "0912'; DROP TABLE contacts;--"}
    r = await http.post(f"{intake}/contacts", json=contact, headers=staff)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "caller_phone", r.text
    assert "DROP" not in r.text  # the refusal names the field, never echoes the value


async def test_the_tables_are_all_still_there(stack, injected):
    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        for table in ("intake.cases", "intake.contacts", "intake.victims", "intake.traffickers", "intake.case_notes",
                      "intake.audit_log", "referral.referrals", "notify.notifications"):
            assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table), f"{table} is gone"
        assert await conn.fetchval("SELECT count(*) FROM intake.cases WHERE id = $1",
                                   uuid.UUID(injected["case"]["id"])) == 1
        assert await conn.fetchval("SELECT count(*) FROM intake.cases") >= 1
        # and no statement of ours ran: no table, role or function appeared under a payload's name
        assert await conn.fetchval("SELECT count(*) FROM pg_class WHERE relname ILIKE $1", f"%{TAG}%") == 0
    finally:
        await conn.close()


async def test_the_alerts_carry_no_free_text_evaluated_or_not(http, stack, injected):
    number = injected["case"]["case_number"]
    emails = await wait_emails(http, stack, number, count=4, timeout=60)

    async def texts():
        found = [m["body"] for m in (await http.get(f"{stack.sms_url}/messages")).json() if number in m["body"]]
        return found if len(found) >= 4 else None

    sms = await eventually(texts, 60)
    rendered = [m["subject"] + "\n" + m["body"] + "\n" + (m["html"] or "") for m in emails] + sms
    for text in rendered:
        assert number in text
        assert TAG not in text, f"free text of the case reached an alert:\n{text}"
        for evaluated in EVALUATED:
            assert evaluated not in text
        assert "{{" not in text and "{%" not in text and "<script" not in text.lower()


async def test_template_variables_are_printed_not_evaluated(http, stack):
    """A unit's name or a place comes into a template as a value: a preview with those values set to payloads
    prints them as they are. And a draft that tries to leave the sandbox is refused."""
    headers = operator_headers(stack)
    url = f"{stack.url('notify')}/templates/preview"
    context = {"unit": PAYLOADS[5], "province": PAYLOADS[6], "commune": PAYLOADS[4], "category": PAYLOADS[8]}
    r = await http.post(url, headers=headers, json={"kind": "referral.created", "channel": "email", "language": "en",
                                                    "context": context})
    assert r.status_code == 200, r.text
    shown = r.json()["subject"] + r.json()["body"]
    for value in context.values():
        assert value in shown, f"{value!r} was not printed as it is:\n{shown}"
    for evaluated in EVALUATED:
        assert evaluated not in shown
    for escape in ("{{ reference.__class__.__mro__[1].__subclasses__() }}", "{{ reference.__class__ }}",
                   "{% for x in range(9) %}x{% endfor %}", "{{ lipsum.__globals__ }}"):
        r = await http.post(url, headers=headers, json={"kind": "referral.created", "channel": "sms", "language": "en",
                                                        "body": escape})
        assert r.status_code == 422, f"{escape}: {r.status_code} {r.text}"
        assert "<class" not in r.text and "<built-in" not in r.text  # nothing of Python's came out
