"""What each referral event makes notify send, as the consumer's handler records it: who gets a message, on
which channel, rendered from which template in which language, and that an event redelivered makes nothing new.
Nothing is sent here (test_dispatcher.py sends)."""
import json
import uuid

import pytest

from schemas.events.notifications import DeliveryStatus as D
from services.notify.templates.segments import sms_size
from services.notify.webhooks import service as webhooks
from tests.notify.test_status_metrics import finished
from tests.notify.pipeline import (
    acknowledged, closed, created, email, escalated, fallback, mailbox, notify, number, park_pending, reminder,
    sms,
)

CREATED = "vn.hotline111.referral.created.v1"


@pytest.fixture(scope="module")
async def pipeline(db, stack, routes, sms_gateway):
    async with notify(db, stack, routes, sms_providers=sms_gateway.providers()) as built:
        yield built


@pytest.fixture(autouse=True)
async def parked(db):
    await park_pending(db[0])


def national(e164: str) -> str:
    """+84901234567 as an agency writes it in the directory: 090 123 4567."""
    local = "0" + e164.removeprefix("+84")
    return f"{local[:3]} {local[3:6]} {local[6:]}"


async def test_created_alerts_the_first_contact_of_each_channel_and_the_units_webhooks(pipeline):
    unit, phone, address = uuid.uuid4(), number(), mailbox()
    hook = await pipeline.webhook_endpoint(unit, "https://agency.example/hooks/111")
    await pipeline.webhook_endpoint(uuid.uuid4(), "https://other-agency.example/hooks")  # another unit's
    gone = await pipeline.webhook_endpoint(unit, "https://agency.example/hooks/old")
    async with pipeline.runtime.uow() as uow:
        assert await webhooks.deactivate(uow.session, gone.id)
        await uow.commit()

    referral = created(sms(national(phone)), email(address), unit=unit)
    event_id = await pipeline.handle(referral)

    rows = await pipeline.by_channel(referral.referral_id)
    assert set(rows) == {"sms", "email", "webhook"}
    assert rows["sms"]["recipient"] == phone  # stored in E.164, whatever the directory's spelling
    assert (rows["email"]["recipient"], rows["webhook"]["recipient"]) == (address, hook.url)
    assert rows["webhook"]["webhook_endpoint_id"] == hook.id
    for row in rows.values():
        assert (row["status"], row["kind"], row["language"], row["priority"], row["source_id"]) == (
            "created", "referral.created", "vi", 2, event_id)
    assert referral.case_number in rows["email"]["subject"] and referral.case_number in rows["sms"]["body"]
    # A webhook carries the event itself, as a CloudEvent whose id the receiver deduplicates by.
    event = json.loads(rows["webhook"]["body"])
    assert (event["type"], event["id"], event["subject"]) == (CREATED, str(event_id), referral.case_number)
    assert event["data"]["referral_id"] == str(referral.referral_id)
    # Referral hears of every message, webhooks included.
    for row in rows.values():
        assert await pipeline.reported(row["id"]) == ["created"]


async def test_a_redelivered_event_makes_nothing_new(pipeline):
    unit = uuid.uuid4()
    await pipeline.webhook_endpoint(unit, "https://agency.example/hooks/again")
    referral = created(sms(number()), email(mailbox()), unit=unit)
    event_id = await pipeline.handle(referral)
    first = await pipeline.rows(referral.referral_id)
    assert await pipeline.handle(referral, event_id=event_id) == event_id  # the same event again
    again = await pipeline.rows(referral.referral_id)
    assert [r["id"] for r in again] == [r["id"] for r in first] and len(first) == 3
    for row in first:
        assert await pipeline.reported(row["id"]) == ["created"]


async def test_a_reminder_goes_to_every_contact_of_the_unit_and_its_webhooks(pipeline):
    unit = uuid.uuid4()
    hook = await pipeline.webhook_endpoint(unit, "https://agency.example/hooks/reminders")
    first_sms, first_email = number(), mailbox("first")
    everyone = [sms(first_sms), sms(number()), email(first_email), email(mailbox("second"))]
    referral = created(sms(first_sms), email(first_email), unit=unit)
    await pipeline.handle(referral)
    await pipeline.handle(reminder(referral, *everyone))

    reminders = [r for r in await pipeline.rows(referral.referral_id) if r["kind"] == "referral.reminder"]
    assert sorted((r["channel"], r["recipient"]) for r in reminders) == sorted(
        [(c.channel.value, c.address) for c in everyone] + [("webhook", hook.url)])
    assert all(r["status"] == "created" for r in reminders)


async def test_escalated_and_closed_go_to_whoever_received_the_first_alert(pipeline):
    phone, duty, night = number(), mailbox("duty"), mailbox("night")
    referral = created(sms(phone), email(duty))
    await pipeline.handle(referral)
    await pipeline.handle(fallback(referral, email(night), failed_channel="sms"))
    first = {r["recipient"]: r for r in await pipeline.rows(referral.referral_id)}
    # The SMS failed for good; the duty email and the fallback's reached the unit.
    await pipeline.set(first[phone]["id"], status=D.permanent_failure)
    await pipeline.set(first[duty]["id"], status=D.delivered)
    await pipeline.set(first[night]["id"], status=D.sent)

    await pipeline.handle(acknowledged(referral))  # tells nobody anything
    await pipeline.handle(escalated(referral))
    await pipeline.handle(closed(referral))
    later = [r for r in await pipeline.rows(referral.referral_id) if r["id"] not in {x["id"] for x in first.values()}]
    assert sorted((r["kind"], r["recipient"]) for r in later) == [
        ("referral.closed", duty), ("referral.closed", night), ("referral.escalated", duty),
        ("referral.escalated", night)]
    # Written from the facts kept with the first alert: the events themselves do not repeat them.
    escalation = next(r for r in later if r["kind"] == "referral.escalated" and r["recipient"] == duty)
    assert referral.case_number in escalation["subject"] and "Công an tỉnh Quảng Trị" in escalation["body"]


async def test_when_the_first_alert_reached_nobody_yet_escalated_goes_to_everyone_it_was_meant_for(pipeline):
    phone, duty = number(), mailbox()
    referral = created(sms(phone), email(duty))
    await pipeline.handle(referral)
    await pipeline.handle(escalated(referral))
    escalations = [r for r in await pipeline.rows(referral.referral_id) if r["kind"] == "referral.escalated"]
    assert sorted(r["recipient"] for r in escalations) == sorted([phone, duty])


@pytest.mark.parametrize(("language", "opening"), [
    ("vi", "Đường dây nóng 111 chuyển vụ việc"), ("en", "111 Hotline (Vietnam) referred case"),
])
async def test_a_fallback_renders_the_first_alert_for_the_new_contacts_channel(pipeline, language, opening):
    referral = created(email(mailbox()), language=language)
    await pipeline.handle(referral)
    phone = number()
    await pipeline.handle(fallback(referral, sms(phone), failed_channel="email"))
    rows = await pipeline.by_channel(referral.referral_id)
    mail, text = rows["email"], rows["sms"]
    assert (text["recipient"], text["status"], text["kind"], text["language"]) == (
        phone, "created", "referral.created", language)
    # The SMS template's text, not the email's: no subject, one short line, the same facts.
    assert text["subject"] == "" and text["body"].startswith(opening) and "\n" not in text["body"]
    assert text["body"] != mail["body"] and referral.case_number in text["body"] and referral.ack_url in text["body"]
    assert text["template_id"] != mail["template_id"] and text["segments"] == sms_size(text["body"]).segments


async def test_a_fallback_to_a_contact_that_has_the_alert_sends_nothing_more(pipeline):
    referral = created(email(mailbox()))
    await pipeline.handle(referral)
    phone = number()
    await pipeline.handle(fallback(referral, sms(phone), failed_channel="email"))
    # The same fallback again, as a new event (a replay upstream): that contact has its alert already.
    await pipeline.handle(fallback(referral, sms(phone), failed_channel="email"))
    assert sorted(r["channel"] for r in await pipeline.rows(referral.referral_id)) == ["email", "sms"]


async def test_a_fallback_with_no_first_alert_sends_nothing(pipeline):
    referral = created(email(mailbox()))
    await pipeline.handle(fallback(referral, sms(number())))
    assert await pipeline.rows(referral.referral_id) == []


async def test_an_invalid_recipient_fails_at_once_for_good(pipeline):
    good = mailbox()
    referral = created(sms("0241 234 5678"), email("duty@@police"), email(good))  # a landline, a typo
    before = {c: finished(c, "permanent-failure") for c in ("sms", "email")}
    await pipeline.handle(referral)
    for channel, count in before.items():  # born failed: an outcome for the failure rate too
        assert finished(channel, "permanent-failure") == count + 1
    rows = {r["recipient"]: r for r in await pipeline.rows(referral.referral_id)}
    for bad in ("0241 234 5678", "duty@@police"):
        row = rows[bad]
        assert (row["status"], row["provider_code"], row["attempts"]) == ("permanent-failure", "invalid-recipient", 0)
        assert await pipeline.reported(row["id"]) == ["permanent-failure"]
    assert rows[good]["status"] == "created"
    claimed = await pipeline.send_due()  # the failed ones are never claimed
    assert [r["id"] for r in claimed] == [rows[good]["id"]]
    assert (await pipeline.row(rows["duty@@police"]["id"]))["attempts"] == 0


async def test_vietnamese_sms_is_counted_in_ucs2_parts_and_english_for_a_counterpart_in_gsm7(pipeline):
    vi = created(sms(number()), email(mailbox()))
    en = created(sms(number()), email(mailbox()), language="en")
    for referral in (vi, en):
        await pipeline.handle(referral)
    vi_rows, en_rows = await pipeline.by_channel(vi.referral_id), await pipeline.by_channel(en.referral_id)

    text = vi_rows["sms"]
    size = sms_size(text["body"])
    assert (text["encoding"], text["segments"]) == ("ucs2", size.segments) and text["segments"] >= 1
    assert size.units > 70 and text["segments"] >= 2  # Vietnamese with its diacritics: 70 a part, 67 when split
    assert vi_rows["email"]["subject"].startswith(f"[111] Vụ việc {vi.case_number}")
    assert vi_rows["email"]["segments"] is None and vi_rows["email"]["encoding"] is None

    text = en_rows["sms"]
    assert text["language"] == "en" and text["body"].startswith(f"111 Hotline (Vietnam) referred case {en.case_number}")
    assert (text["encoding"], text["segments"]) == ("gsm7", sms_size(text["body"]).segments)
    assert en_rows["email"]["subject"].startswith(f"[111] Case {en.case_number} referred to you")
    # The unit's name as an English reader writes it: without diacritics.
    assert en_rows["email"]["body"].startswith("Dear Cong an tinh Quang Tri,\n")
    assert "Exploitation: forced labour\n" in en_rows["email"]["body"]


@pytest.mark.parametrize(("urgency", "priority"), [("emergency", 0), ("high", 1), ("normal", 2)])
async def test_urgency_sets_the_priority_of_every_message(pipeline, urgency, priority):
    referral = created(sms(number()), email(mailbox()), urgency=urgency)
    await pipeline.handle(referral)
    assert {r["priority"] for r in await pipeline.rows(referral.referral_id)} == {priority}


async def test_an_sms_with_no_provider_configured_fails_at_once(db, stack, routes):
    async with notify(db, stack, routes, sms_providers=[]) as bare:
        referral = created(sms(number()), email(mailbox()))
        await bare.handle(referral)
        rows = await bare.by_channel(referral.referral_id)
    assert (rows["sms"]["status"], rows["sms"]["provider_code"]) == ("technical-failure", "channel-unsupported")
    assert rows["email"]["status"] == "created"
