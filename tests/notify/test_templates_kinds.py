"""Which message each referral event asks for, and the context its templates get: facts of the referral in
the unit's language, from the event or from what notify kept of the referral's first alert; never anything
else the event carries."""
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events.referrals import (
    AgencyContact,
    ReferralContactFallback,
    ReferralCreated,
    ReferralEscalated,
    ReferralReminder,
    ReferralStatusChanged,
)
from schemas.geography import communes
from schemas.vocab import Exploitation
from services.notify.templates.kinds import KEYS, SAMPLE, Kind, context_for, facts_of, kind_of, language_of

MARK = "Nguyễn Thị Bí Mật 0912345678"  # would be personal data: it must never reach a context
DEADLINE = datetime(2026, 3, 5, 23, 30, tzinfo=UTC)  # 06:30 the next day in Vietnam
IDS = {"referral_id": uuid.UUID(int=1), "case_id": uuid.UUID(int=2), "case_number": "111-2026-000007",
       "agency_unit_id": uuid.UUID(int=3)}


def created(**changes) -> ReferralCreated:
    fields = {**IDS, "agency_unit_name": "Công an tỉnh Lào Cai", "agency_kind": "police_province",
              "province_code": "15", "commune_code": None, "urgency": "high", "acknowledge_by": DEADLINE,
              "match_reason": MARK, "contacts": [AgencyContact(channel="sms", address="+84912345678")],
              "exploitation": ["forced_labour"], "ack_url": "https://h.example/ack/t", "language": "vi"}
    return ReferralCreated(**(fields | changes))


def reminder(**changes) -> ReferralReminder:
    fields = {**IDS, "agency_unit_name": "Công an tỉnh Lào Cai", "urgency": "high", "acknowledge_by": DEADLINE,
              "escalate_at": DEADLINE + timedelta(hours=1), "contacts": [], "ack_url": "https://h.example/ack/t"}
    return ReferralReminder(**(fields | changes))


def escalated(to_level="region") -> ReferralEscalated:
    return ReferralEscalated(**IDS, escalated_referral_id=uuid.uuid4() if to_level else None, to_level=to_level,
                             escalated_at=DEADLINE + timedelta(hours=2))


def status(to: str) -> ReferralStatusChanged:
    return ReferralStatusChanged(**IDS, from_status="accepted", to_status=to, via="agency_api", changed_at=DEADLINE)


def test_kind_of_each_event():
    assert kind_of(created()) is Kind.created
    assert kind_of(created(cause="escalation")) is Kind.created  # a new unit, one level up: a new referral
    assert kind_of(created(cause="reroute")) is Kind.rerouted
    assert kind_of(reminder()) is Kind.reminder
    assert kind_of(escalated()) is Kind.escalated
    assert kind_of(status("closed")) is Kind.closed
    assert kind_of(status("declined")) is None
    fallback = ReferralContactFallback(**IDS, contact=AgencyContact(channel="email", address="a@b.example"),
                                       failed_channel="sms", failed_status="permanent-failure", occurred_at=DEADLINE)
    assert kind_of(fallback) is None and kind_of(object()) is None


def test_created_context_in_vietnamese():
    assert context_for("referral.created", created(commune_code="03037"), "vi") == {
        "reference": "111-2026-000007", "referral_id": str(uuid.UUID(int=1)), "unit": "Công an tỉnh Lào Cai",
        "urgency": "khẩn", "category": "cưỡng bức lao động", "province": "Lào Cai",
        "commune": "Xã Tả Van", "deadline": "06:30 06/03/2026 (giờ Việt Nam)",
        "ack_url": "https://h.example/ack/t"}


def test_created_context_in_english():
    ctx = context_for(Kind.created, created(commune_code="00070", province_code="01", language="en",
                                            exploitation=["sexual_exploitation", "forced_marriage"]))
    assert ctx["unit"] == "Cong an tinh Lao Cai" and ctx["province"] == "Ha Noi City"
    assert ctx["commune"] == "Hoan Kiem Ward" and ctx["urgency"] == "high"
    assert context_for(Kind.created, created(commune_code="03037", language="en"))["commune"] == "Ta Van Commune"
    assert ctx["category"] == "sexual exploitation, forced marriage"
    assert ctx["deadline"] == "06:30 06/03/2026 (Vietnam time)"


def test_no_exploitation_is_unspecified_and_unknown_commune_is_empty():
    assert context_for(Kind.created, created(exploitation=[]), "vi")["category"] == "chưa rõ"
    assert context_for(Kind.created, created(exploitation=[]), "en")["category"] == "unspecified"
    assert context_for(Kind.created, created(), "vi")["commune"] == ""


def test_template_language_wins_and_unknown_languages_fall_back_to_vietnamese():
    event = created(language="en")
    assert language_of(event) == "en"
    assert context_for(Kind.created, event, "vi")["urgency"] == "khẩn"  # rendered by a vi template
    assert context_for(Kind.created, created(language="lo"))["urgency"] == "khẩn"
    assert language_of(escalated(), {"language": "en"}) == "en" and language_of(escalated()) == "vi"


def test_reminder_takes_place_and_category_from_earlier_facts_and_its_own_over_them():
    earlier = facts_of(created(commune_code="03037", agency_unit_name="Old name", urgency="normal"))
    ctx = context_for(Kind.reminder, reminder(), "vi", earlier)
    assert ctx["unit"] == "Công an tỉnh Lào Cai" and ctx["urgency"] == "khẩn"  # the reminder's own
    assert ctx["province"] == "Lào Cai" and ctx["commune"] == "Xã Tả Van"
    assert ctx["category"] == "cưỡng bức lao động" and ctx["escalate_at"] == "07:30 06/03/2026 (giờ Việt Nam)"
    assert set(ctx) == set(KEYS[Kind.reminder])


def test_escalated_and_closed_without_and_with_earlier_facts():
    bare = context_for(Kind.escalated, escalated(), "vi")
    assert bare["to_level"] == "cấp khu vực" and bare["unit"] == bare["urgency"] == bare["deadline"] == ""
    assert bare["category"] == "chưa rõ" and bare["reference"] == "111-2026-000007"
    assert context_for(Kind.escalated, escalated(None), "en")["to_level"] == ""
    # As notify keeps them: through JSON.
    earlier = json.loads(json.dumps(facts_of(created(language="en"))))
    ctx = context_for(Kind.escalated, escalated("national"), None, earlier)
    assert ctx["unit"] == "Cong an tinh Lao Cai" and ctx["deadline"] == "06:30 06/03/2026 (Vietnam time)"
    assert ctx["to_level"] == "national level" and "ack_url" not in ctx
    closed = context_for(Kind.closed, status("closed"), "vi", earlier)
    assert set(closed) == set(KEYS[Kind.closed]) and closed["urgency"] == "khẩn"


def test_kind_must_match_the_event():
    with pytest.raises(ValueError):
        context_for(Kind.reminder, created())
    with pytest.raises(ValueError):
        context_for(Kind.closed, status("declined"))


def test_samples_have_every_key_of_their_kind():
    for kind, by_language in SAMPLE.items():
        for lang, ctx in by_language.items():
            assert list(ctx) == list(KEYS[kind]) and all(isinstance(v, str) and v for v in ctx.values()), (kind, lang)


COMMUNES = sorted(communes().items())


@given(commune=st.sampled_from(COMMUNES), urgency=st.sampled_from(["emergency", "high", "normal"]),
       purposes=st.lists(st.sampled_from(list(Exploitation)), max_size=4),
       language=st.sampled_from(["vi", "en"]), cause=st.sampled_from(["matched", "escalation", "reroute"]),
       deadline=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)))
def test_contexts_hold_only_the_referrals_facts(commune, urgency, purposes, language, cause, deadline):
    code, (_, province) = commune
    event = created(commune_code=code, province_code=province, urgency=urgency, exploitation=purposes,
                    language=language, cause=cause, acknowledge_by=deadline)
    ctx = context_for(kind_of(event), event)
    assert list(ctx) == list(KEYS[kind_of(event)]) and all(isinstance(v, str) for v in ctx.values())
    assert ctx["province"] and ctx["commune"] and ctx["category"]
    clock = "giờ Việt Nam" if language == "vi" else "Vietnam time"
    assert re.fullmatch(rf"\d\d:\d\d \d\d/\d\d/\d{{4}} \({clock}\)", ctx["deadline"])
    if language == "en":
        assert all(v.isascii() for v in ctx.values())  # an English SMS stays GSM-7
    text = " ".join(ctx.values())
    assert MARK not in text and "0912345678" not in text and "+84912345678" not in text
