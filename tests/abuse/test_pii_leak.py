"""Names, phone numbers and free text stay in intake, encrypted: nowhere else, in no form.

Two cases are reported with known, unique markers in every personal field (caller's name, number and notes;
victims' names and ethnicity; suspects' descriptions; narrative, urgency reason, places; a note; a later
change of the narrative), and their personal data is read once (the audited read). Once the agencies'
alerts are out and reporting has counted the cases, the markers are looked for in every log line the stack
wrote, every Kafka record on every topic (key, value, headers), every SMS and email sent, and every row of
every table of referral, notify and reporting. None may be there. In intake's tables the personal columns
hold ciphertext, never the text.

The markers are ASCII tokens (`Zq` + hex) inside Vietnamese text, so they are found in JSON that escapes
non-ASCII characters too; the phone number is looked for as sent and in its canonical forms.
"""
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from runtime.crypto import kid_of
from runtime.db import asyncpg_dsn
from tests.e2e.slice import operator_headers, report, wait_emails
from tests.support import eventually

RUN = f"Zq{uuid.uuid4().hex[:10]}"  # in every marker: one search finds any of them
MARK = {field: f"{RUN}{tag}" for field, tag in (
    ("caller_name", "cn"), ("caller_notes", "co"), ("victim_name", "vn"), ("victim_name_2", "vm"),
    ("ethnicity", "et"), ("trafficker", "tr"), ("narrative", "na"), ("urgency_reason", "ur"),
    ("abroad_place", "ap"), ("location_text", "lt"), ("note", "no"), ("narrative_changed", "nc"))}
_DIGITS = "".join(random.choices("0123456789", k=7))
PHONE_SENT = f"+84 91{_DIGITS[0]} {_DIGITS[1:4]} {_DIGITS[4:]}"  # as the operator types it
PHONE_FORMS = (PHONE_SENT, f"+8491{_DIGITS}", f"8491{_DIGITS}", f"091{_DIGITS}", f"91{_DIGITS}")
NEEDLES = (RUN, *PHONE_FORMS)


def _ago(seconds: int) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def hits(text: str | bytes, where: str) -> list[str]:
    """`where: …context…` for each marker found in `text`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    found = []
    for needle in NEEDLES:
        at = text.find(needle)
        if at >= 0:
            found.append(f"{where}: …{text[max(0, at - 80):at + len(needle) + 40]!r}…")
    return found


@pytest.fixture(scope="module")
async def reported(stack):
    """Two cases with markers everywhere, alerted and counted: {cases: [...], contact_id}."""
    async with httpx.AsyncClient(timeout=30) as http:
        staff = operator_headers(stack)
        intake = stack.url("intake")
        exact = {"Authorization": f"Bearer {stack.token('analyst', 'admin', sub='abuse-pii-rep')}"}

        async def counted(province: str) -> dict[str, int]:
            r = await http.get(f"{stack.url('reporting')}/v1/stats/summary", headers=exact,
                               params={"province": province, "suppress": "false", "group": "all"})
            assert r.status_code == 200, r.text
            figures = {row["figure"]: row["value"] for row in r.json()["rows"]}
            return {f: figures[f] for f in ("cases_reported", "referrals", "alerts")}

        before = {p: await counted(p) for p in ("01", "48")}
        contact = await http.post(f"{intake}/contacts", headers=staff, json={
            "channel": "phone", "contact_type": "information_report", "started_at": _ago(900), "ended_at": _ago(300),
            "caller_role": "relative_or_friend", "caller_name": f"Trần Văn {MARK['caller_name']}",
            "caller_phone": PHONE_SENT, "consent_callback": True,
            "notes": f"Gọi lại sau 18h, {MARK['caller_notes']}"})
        assert contact.status_code == 201, contact.text
        contact_id = contact.json()["id"]
        child = await report(
            http, stack, province_code="01", commune_code="00070", contact_id=contact_id,
            victims=[{"name": f"Nguyễn Thị {MARK['victim_name']}", "sex": "female", "age": 16,
                      "ethnicity": f"Hmông {MARK['ethnicity']}", "needs": ["shelter", "medical"]}],
            traffickers=[{"description": f"Người đàn ông tên {MARK['trafficker']}, số {PHONE_SENT}"}],
            exploitation=["forced_marriage"], recruitment_channel="zalo",
            narrative=f"Bé gái bị đưa lên biên giới. Người gọi: {PHONE_SENT}. {MARK['narrative']}",
            location_text=f"Gần chợ, {MARK['location_text']}")
        abroad = await report(
            http, stack, province_code="48", immediate_danger=True, abroad_country="CN",
            abroad_place=f"Quảng Tây {MARK['abroad_place']}", moving_across_border=True, destination_country="CN",
            victims=[{"name": f"Lê Thị {MARK['victim_name_2']}", "sex": "female", "age": 22}],
            exploitation=["sexual_exploitation"], urgency="emergency",
            urgency_reason=f"Đang bị đưa qua biên giới {MARK['urgency_reason']}")
        note = await http.post(f"{intake}/cases/{child['id']}/notes", headers=staff,
                               json={"text": f"Đã gọi lại {PHONE_SENT} {MARK['note']}"})
        assert note.status_code == 201, note.text

        async def referred():  # the first referral moves the case on (a new version): change it after that
            r = await http.get(f"{intake}/cases/{child['id']}", headers=staff)
            return r if r.json()["status"] == "referred" else None

        current = await eventually(referred, 60)
        changed = await http.patch(f"{intake}/cases/{child['id']}",
                                   headers=staff | {"If-Match": current.headers["etag"]},
                                   json={"narrative": f"Cập nhật: {MARK['narrative_changed']}", "violence": True})
        assert changed.status_code == 200, changed.text
        for case in (child, abroad):  # the audited reads, which write intake's audit log
            assert (await http.get(f"{intake}/cases/{case['id']}/personal-data", headers=staff)).status_code == 200
        assert (await http.get(f"{intake}/contacts/{contact_id}/personal-data", headers=staff)).status_code == 200

        # the alerts: every notification of both cases sent, and each email and SMS of them arrived
        expected = {}
        for case, province in ((child, "01"), (abroad, "48")):
            alerts = await eventually(lambda case=case: _alerts_out(http, stack, case), 60)
            referrals = (await http.get(f"{stack.url('referral')}/referrals", params={"case_id": case["id"]},
                                        headers=staff)).json()
            expected[province] = {"cases_reported": 1, "referrals": len(referrals), "alerts": alerts}
        # and reporting has counted the cases, their referrals and their alerts
        await eventually(lambda: _counted_all(counted, before, expected), 60)
        return {"cases": [child, abroad], "contact_id": contact_id}


async def _alerts_out(http, stack, case: dict) -> int:
    """How many alerts the case got, once every one has left notify and the mailbox and SMS gateway hold
    as many as it sent; 0 before."""
    r = await http.get(f"{stack.url('notify')}/notifications", params={"case_id": case["id"]},
                       headers=operator_headers(stack))
    sent = r.json()["items"]
    if not sent or any(n["status"] in ("created", "sending") for n in sent):
        return 0
    number = case["case_number"]
    mails = await wait_emails(http, stack, number, count=sum(n["channel"] == "email" for n in sent))
    sms = [m for m in (await http.get(f"{stack.sms_url}/messages")).json() if number in m["body"]]
    return len(sent) if len(sms) >= sum(n["channel"] == "sms" for n in sent) and mails else 0


async def _counted_all(counted, before: dict, expected: dict) -> bool:
    for province, more in expected.items():
        now = await counted(province)
        if any(now[f] < before[province][f] + n for f, n in more.items()):
            return False
    return True


async def test_no_log_line_holds_personal_data(stack, reported):
    logs = sorted(Path(stack.log_dir).glob("*.log"))
    assert {p.stem for p in logs} >= {"intake", "referral", "notify", "reporting"}
    found = []
    for path in logs:
        text = path.read_bytes()
        assert path.stem not in {"intake", "referral", "notify", "reporting"} or text, f"{path} is empty"
        found += hits(text, path.name)
    assert not found, "\n".join(found)


async def test_no_kafka_record_holds_personal_data(stack, reported):
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if not t.startswith("__"))
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        found, seen, case_records = [], 0, 0
        case_ids = {c["id"].encode() for c in reported["cases"]}
        pending = {tp for tp in parts if ends[tp] > 0}
        while pending:
            for tp, records in (await consumer.getmany(timeout_ms=500, max_records=5000)).items():
                for rec in records:
                    seen += 1
                    raw = b"\0".join([rec.key or b"", rec.value or b"", *(k.encode() + b"=" + (v or b"")
                                                                         for k, v in rec.headers or ())])
                    case_records += any(i in raw for i in case_ids)
                    found += hits(raw, f"{tp.topic}[{tp.partition}]@{rec.offset}")
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    assert case_records >= 6, f"only {case_records} records about the two cases in {seen}: read the wrong topics?"
    assert not found, "\n".join(found)


async def test_no_sms_or_email_holds_personal_data(http, stack, reported):
    sms = (await http.get(f"{stack.sms_url}/messages")).json()
    mails = (await http.get(stack.smtp_messages_url)).json()
    numbers = [c["case_number"] for c in reported["cases"]]
    assert all(any(n in m["body"] for m in sms) for n in numbers)
    assert all(any(n in m["subject"] for m in mails) for n in numbers)
    found = []
    for m in sms:
        found += hits(json.dumps(m, ensure_ascii=False), f"SMS to {m['to']}")
    for m in mails:
        found += hits(json.dumps(m, ensure_ascii=False), f"email to {m['rcpt_tos']}")
    assert not found, "\n".join(found)


async def _rows(conn, schema: str) -> list[tuple[str, str, list]]:
    """(table, column, values) of every text-like, JSON, array and bytea column of `schema`."""
    columns = await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = $1 AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', "
        "'ARRAY', 'bytea', 'USER-DEFINED') ORDER BY table_name, ordinal_position", schema)
    out = []
    for c in columns:
        cast = "" if c["data_type"] == "bytea" else "::text"
        values = await conn.fetch(f'SELECT "{c["column_name"]}"{cast} AS v FROM "{schema}"."{c["table_name"]}" '
                                  f'WHERE "{c["column_name"]}" IS NOT NULL')
        out.append((c["table_name"], c["column_name"], [r["v"] for r in values]))
    return out


def _text(value) -> str | bytes:
    return bytes(value) if isinstance(value, (bytes, memoryview)) else value


async def test_no_other_service_stores_personal_data(stack, reported):
    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        found, columns = [], 0
        for schema in ("referral", "notify", "reporting"):
            for table, column, values in await _rows(conn, schema):
                columns += 1
                for value in values:
                    found += hits(_text(value), f"{schema}.{table}.{column}")
        reporting_tables = await conn.fetchval("SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                                             "'reporting'")
    finally:
        await conn.close()
    assert reporting_tables >= 5 and columns > 50, (reporting_tables, columns)
    assert not found, "\n".join(found[:50])


async def test_intake_keeps_personal_data_as_ciphertext_only(stack, reported):
    child, abroad = (uuid.UUID(c["id"]) for c in reported["cases"])
    contact = uuid.UUID(reported["contact_id"])
    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        personal = [
            *await conn.fetch("SELECT narrative, urgency_reason, abroad_place, location_text FROM intake.cases "
                              "WHERE id = ANY($1)", [child, abroad]),
            *await conn.fetch("SELECT name, ethnicity FROM intake.victims WHERE case_id = ANY($1)", [child, abroad]),
            *await conn.fetch("SELECT description FROM intake.traffickers WHERE case_id = $1", child),
            *await conn.fetch("SELECT text FROM intake.case_notes WHERE case_id = $1", child),
            *await conn.fetch("SELECT caller_name, caller_phone, notes FROM intake.contacts WHERE id = $1", contact),
        ]
        blobs = [bytes(v) for row in personal for v in row.values() if v is not None]
        # every personal field that was given: 2+2 of the cases, 2+1 of the victims, a suspect, a note, 3 of the caller
        assert len(blobs) == 12, len(blobs)
        for blob in blobs:
            assert kid_of(blob), "not the platform's ciphertext"
            assert not hits(blob, "ciphertext"), "plain text inside a ciphertext"
        # and nothing else in intake holds the text: not the outbox, the idempotency answers or the audit log
        found = []
        for table, column, values in await _rows(conn, "intake"):
            for value in values:
                found += hits(_text(value), f"intake.{table}.{column}")
    finally:
        await conn.close()
    assert not found, "\n".join(found[:50])
