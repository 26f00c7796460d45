"""Templates are judged when saved: validate() refuses syntax errors, unknown names (in any branch), sandbox
escapes, constructs that could stall the service and SMS longer than the limit, naming field and line. It
never raises anything else, whatever the text."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notify.templates.kinds import KEYS, Kind, sample
from services.notify.templates.rendering import MAX_SMS_SEGMENTS, Draft, TemplateInvalid, render, validate
from services.notify.templates.seed import defaults


def invalid(channel: str, body: str, subject: str = "", kind: str = "referral.created") -> TemplateInvalid:
    with pytest.raises(TemplateInvalid) as caught:
        validate(kind, channel, "vi", subject, body)
    return caught.value


@pytest.mark.parametrize("d", defaults(), ids=lambda d: f"{d.kind}/{d.channel}/{d.language}")
def test_every_default_validates(d):
    rendered = validate(d.kind, d.channel, d.language, d.subject, d.body)
    assert "{{" not in rendered.body and "{%" not in rendered.body
    if d.channel == "sms":
        assert rendered.size.segments <= MAX_SMS_SEGMENTS and rendered.subject == ""
    else:
        assert rendered.subject and rendered.size is None
        no_personal_data = "không chứa dữ liệu cá nhân" if d.language == "vi" else "no personal data by design"
        assert no_personal_data in rendered.body


def test_defaults_cover_every_kind_channel_and_language():
    have = {(d.kind, d.channel, d.language) for d in defaults()}
    assert have == {(k, c, lang) for k in Kind for c in ("sms", "email") for lang in ("vi", "en")}


def test_english_sms_stays_gsm7_and_vietnamese_sms_keeps_its_diacritics():
    for d in defaults():
        if d.channel == "sms":
            size = validate(d.kind, d.channel, d.language, d.subject, d.body).size
            assert size.encoding == ("gsm7" if d.language == "en" else "ucs2"), d


def test_syntax_error_names_field_and_line():
    err = invalid("email", "Kính gửi,\n\n{{ reference }\n", subject="[111] {{ reference }}")
    assert err.field == "body" and err.line == 3 and err.errors[0]["line"] == 3
    assert err.status == 422 and err.errors[0]["field"] == "body"
    err = invalid("email", "ok", subject="[111] {% if %}")
    assert err.field == "subject" and err.line == 1


def test_unknown_name_is_refused_in_any_branch():
    # The sample takes the first branch; the name in the other is found all the same.
    err = invalid("sms", "{{ reference }}\n{% if unit %}ok{% else %}{{ victim_name }}{% endif %}")
    assert err.field == "body" and err.line == 2 and "'victim_name' is undefined" in err.message
    # escalate_at belongs to reminders only
    assert "'escalate_at' is undefined" in invalid("sms", "{{ escalate_at }}").message
    validate("referral.reminder", "sms", "vi", "", "{{ escalate_at }}")


@pytest.mark.parametrize(("body", "says"), [
    ("{{ unit.__class__ }}", "unsafe"),
    ("{{ unit['__class__'] }}", "unsafe"),
    ("{{ unit.upper }}", "method"),
    ("{{ unit.upper() }}", "calls"),
    ("{% for c in unit %}{{ c }}{% endfor %}", "loops"),
    ("{% set x = unit %}{{ x }}", "{% set %}"),
    ("{% macro m() %}x{% endmacro %}", "macros"),
    ("{% include 'x' %}", "include"),
    ("{{ unit|center(100000000) }}", "No filter named 'center'"),
    ("{{ 'x' * 100000000 }}", "repeated"),
    ("{{ " + " ~ ".join(["'x' * 9000"] * 12) + " }}", "renders longer"),
    ("{{ '%0999999999d' % 1 }}", "%"),
    ("{{ 99999 ** 99999 }}", "too large"),
    ("{{ range }}", "'range' is undefined"),
    ("{{ 1 / 0 }}", "division by zero"),
])
def test_what_templates_may_not_do(body, says):
    err = invalid("sms", "Vụ việc {{ reference }}: " + body)
    assert err.field == "body" and says in err.message


def test_sms_longer_than_the_limit_is_refused_and_the_limit_itself_passes():
    # "ư" is UCS-2: 67 units a part once concatenated.
    ok = "ư" * (67 * MAX_SMS_SEGMENTS - len("111-2026-000042")) + "{{ reference }}"
    assert validate("referral.created", "sms", "vi", "", ok).size.segments == MAX_SMS_SEGMENTS
    err = invalid("sms", "ư" + ok)
    assert err.field == "body" and f"at most {MAX_SMS_SEGMENTS}" in err.message


def test_fields_channel_by_channel():
    assert invalid("sms", "{{ reference }}", subject="x").field == "subject"
    assert invalid("email", "{{ reference }}", subject="  ").field == "subject"
    assert invalid("email", "  \n", subject="{{ reference }}").field == "body"
    assert invalid("email", "x", subject="{{ unit }}").message == "the subject renders empty"  # unit unknown
    for field, value in (("kind", "referral.lost"), ("channel", "fax"), ("language", "fr")):
        args = {"kind": "referral.created", "channel": "sms", "language": "vi"} | {field: value}
        with pytest.raises(TemplateInvalid) as caught:
            validate(args["kind"], args["channel"], args["language"], "", "{{ reference }}")
        assert caught.value.field == field and caught.value.errors[0]["in"] == "path"


def test_render_is_plain_text_with_one_line_subjects():
    context = sample("referral.created", "vi") | {"unit": "<b>A & B</b>"}
    out = render(Draft("email", "[111]\n {{ reference }}  \n", "{{ unit }}\n\n"), context)
    assert out.subject == "[111] 111-2026-000042" and out.body == "<b>A & B</b>\n" and out.size is None
    out = render(Draft("sms", "", "  {{ reference }}\n"), context)
    assert out.body == "111-2026-000042" and out.size.segments == 1 and out.size.encoding == "gsm7"


def test_render_with_another_kinds_context_is_template_invalid():
    with pytest.raises(TemplateInvalid):
        render(Draft("sms", "", "{{ escalate_at }}"), sample("referral.created", "vi"))


# ---- fuzz: nothing but TemplateInvalid, whatever is posted ----------------------------------------------

FRAGMENTS = ["{{", "}}", "{%", "%}", "{#", "#}", " if ", " else ", " endif ", " for ", " in ", " set ", "(", ")",
             "[", "]", "'", '"', "|", "upper", "truncate(3)", "default('x')", "~", "*", "**", "%", "/", "-", "+",
             ".", "__class__", "reference", "unit", "urgency", "ack_url", "x", "9", "99999", "0", ",", "\n", " ",
             "not", "and", "or", "==", "is defined", "raw", "endraw", "{{ reference }}", "Đường dây nóng"]
jinja_like = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
texts = st.one_of(st.text(max_size=300), jinja_like)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(list(Kind)), channel=st.sampled_from(["sms", "email"]),
       language=st.sampled_from(["vi", "en"]), subject=texts, body=texts)
def test_validate_raises_only_template_invalid(kind, channel, language, subject, body):
    try:
        rendered = validate(kind, channel, language, subject if channel == "email" else "", body)
    except TemplateInvalid as exc:
        assert exc.field in ("subject", "body") and exc.errors
    else:
        assert rendered.body.strip()
        if channel == "sms":
            assert rendered.size.segments <= MAX_SMS_SEGMENTS


@given(st.dictionaries(st.sampled_from(KEYS[Kind.reminder]), st.text(max_size=200)))
def test_defaults_render_any_values(values):
    """A saved template renders whatever text the facts turn out to be."""
    for d in defaults():
        if d.kind == Kind.reminder:
            render(d, sample(d.kind, d.language) | values)
