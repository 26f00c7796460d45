"""Recipients checked and normalised: E.164 numbers, email addresses, webhook URLs."""
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import urls

from services.notify.recipients import (
    FICTITIOUS_SMS,
    InvalidRecipient,
    normalise,
    normalise_email,
    normalise_sms,
    normalise_webhook,
)

# ---- sms -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("written", [
    "0912 345 678", "0912345678", "84912345678", "+84912345678", "+84 91 234 5678", "(+84) 912-345-678",
    "0912.345.678", "0084 912 345 678", " +84 912 345 678 ", "+84 0912 345 678",
])
def test_vietnamese_ways_of_writing_a_mobile_number(written):
    assert normalise_sms(written) == "+84912345678"


@pytest.mark.parametrize("written, e164", [
    ("0389 123 456", "+84389123456"),  # Viettel, ex-0169
    ("070 123 4567", "+84701234567"),  # MobiFone, ex-0120
    ("+1 650 253 0000", "+16502530000"),  # a number with its country code is read as written
    ("+86 139 1234 5678", "+8613912345678"),  # a counterpart in China
])
def test_other_valid_numbers(written, e164):
    assert normalise_sms(written) == e164


def test_the_default_region_can_be_changed():
    assert normalise_sms("07400 123456", region="GB") == "+447400123456"
    with pytest.raises(InvalidRecipient, match="Vietnam's"):
        normalise_sms("07400 123456")  # read as Vietnamese by default


@pytest.mark.parametrize("written, message", [
    ("", "is empty"),
    ("   ", "is empty"),
    ("hotline", "is not a phone number"),
    ("0912 345 678 ext. 12", "is not a phone number"),
    ("1-800-FLOWERS", "is not a phone number"),
    ("+84 912 +345 678", "is not a phone number"),
    ("+", "is not a phone number"),
    ("+999 1234 5678", "no valid country code"),
    ("0912 345 67", "not a valid number: Vietnam's"),
    ("0912 345 6789", "not a valid number: Vietnam's"),
    ("0168 123 4567", "not a valid number: Vietnam's"),  # an 11-digit number renumbered in 2018
    ("+44 7700 900123", r"not a valid number: \+44's"),  # Ofcom's drama range
    ("+84 24 3825 1234", "a landline, which cannot receive SMS"),
    ("1800 1567", "a toll-free number, which cannot receive SMS"),
    ("1900 1234", "a premium-rate number, which cannot receive SMS"),
    ("0912", "too short"),
    ("+84 91", "too short"),
    ("+84 9" + "1" * 30, "too long"),
])
def test_invalid_numbers_are_refused_with_a_reason(written, message):
    with pytest.raises(InvalidRecipient, match=message) as caught:
        normalise_sms(written)
    assert caught.value.field == "sms"


# ---- email -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("written, canonical", [
    ("duty@police.example", "duty@police.example"),
    ("  Duty.Officer@CAND.gov.VN ", "Duty.Officer@cand.gov.vn"),  # the domain's case is not significant
    ("a+tag@x.example", "a+tag@x.example"),
    ("truc@công-an.vn", "truc@xn--cng-an-ixa.vn"),  # an international domain, in its ASCII form
])
def test_valid_email_addresses(written, canonical):
    assert normalise_email(written) == canonical


@pytest.mark.parametrize("written, message", [
    ("duty", "must have an @-sign"),
    ("duty@", "There must be something after the @-sign"),
    ("@police.example", "There must be something before the @-sign"),
    ("duty@@police.example", "invalid characters: '@'"),
    ("duty officer@police.example", "invalid characters before the @-sign: SPACE"),
    ("Duty <duty@police.example>", "display name .* not permitted"),  # no display names
    # would need SMTPUTF8 on every hop
    ("trực@police.example", "Internationalized characters before the @-sign are not supported"),
    ("duty@police", "not valid. It should have a period"),
    ("duty@police.local", "special-use or reserved"),
    ("duty@[127.0.0.1]", "bracketed IP address"),
])
def test_invalid_email_addresses_are_refused_with_a_reason(written, message):
    with pytest.raises(InvalidRecipient, match=message) as caught:
        normalise_email(written)
    assert caught.value.field == "email"


def test_no_dns_is_asked():
    """Syntax only: a domain that cannot resolve is still accepted (the relay will say so)."""
    assert normalise_email("x@no-such-domain-a8f3.example") == "x@no-such-domain-a8f3.example"


# ---- webhook ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("written, canonical", [
    ("https://hooks.police.example/hotline", "https://hooks.police.example/hotline"),
    ("HTTPS://Hooks.Police.Example:443", "https://hooks.police.example/"),
    ("https://hooks.police.example:8443/a/b?c=d&e=f", "https://hooks.police.example:8443/a/b?c=d&e=f"),
    ("https://hooks.police.example./x?", "https://hooks.police.example/x"),
    ("https://203.0.113.7/h", "https://203.0.113.7/h"),
    ("https://[2001:DB8:0::1]:443/h", "https://[2001:db8::1]/h"),
    ("http://localhost:8080/hook", "http://localhost:8080/hook"),
    ("http://127.0.0.1/hook", "http://127.0.0.1/hook"),
    ("http://[::1]:80/hook", "http://[::1]/hook"),
    ("https://x.example/a%20b", "https://x.example/a%20b"),  # percent-escapes kept as given
])
def test_valid_webhook_urls(written, canonical):
    assert normalise_webhook(written) == canonical


@pytest.mark.parametrize("written, message", [
    ("hooks.police.example/hotline", "must start with https://"),
    ("ftp://hooks.police.example/", "must start with https://"),
    ("http://hooks.police.example/", "must use https"),
    ("http://10.0.0.5/", "must use https"),
    ("http://127.0.0.2/", "must use https"),  # the webhooks API's rule: 127.0.0.1, ::1 or localhost
    ("https://user:secret@hooks.police.example/", "no user name or password"),
    ("https://hooks.police.example/#top", "no #fragment"),
    ("https://hooks.police.example/a b", "printable ASCII"),
    ("https://công-an.vn/hook", "xn-- form"),
    ("https:///hook", "no host"),
    ("https://-bad-.example/", "not a host name"),
    ("https://a..example/", "not a host name"),
    ("https://x_y.example/", "not a host name"),
    ("https://127.1/", "not an IPv4 address"),
    ("https://999.0.0.1/", "not an IPv4 address"),
    ("https://[fe80::1%25eth0]/", "IPv6"),
    ("https://[::1/", "is not a URL"),
    ("https://x.example:99999/", "is not a URL"),
    ("https://x.example:0/", "port 0"),
    ("https://x.example:https/", "is not a URL"),
])
def test_invalid_webhook_urls_are_refused_with_a_reason(written, message):
    with pytest.raises(InvalidRecipient, match=message) as caught:
        normalise_webhook(written)
    assert caught.value.field == "webhook"


# ---- any channel -----------------------------------------------------------------------------------

def test_normalise_dispatches_by_channel_and_names_the_field():
    assert normalise("sms", "0912 345 678") == "+84912345678"
    assert normalise("email", "A@B.example") == "A@b.example"
    assert normalise("webhook", "https://B.example") == "https://b.example/"
    with pytest.raises(InvalidRecipient) as caught:
        normalise("sms", "nope", field="contacts[2].address")
    assert caught.value.field == "contacts[2].address" and str(caught.value).startswith("contacts[2].address: ")


def test_an_unknown_channel_or_a_value_that_is_not_text_is_refused():
    with pytest.raises(InvalidRecipient) as caught:
        normalise("fax", "+84912345678")
    assert caught.value.field == "channel"
    for value in (None, 84912345678, b"+84912345678"):
        with pytest.raises(InvalidRecipient, match="must be text"):
            normalise("sms", value)


def test_invalid_recipient_is_a_value_error():
    assert issubclass(InvalidRecipient, ValueError)


@pytest.mark.parametrize("channel, value", [
    ("webhook", "https://x.example/" + "a" * 5000),
    ("sms", "0" * 321),
    ("webhook", "https://x.example?" + "a" * 302),  # 320 as written, 321 with the '/' added
])
def test_values_longer_than_the_recipient_column_are_refused(channel, value):
    with pytest.raises(InvalidRecipient, match="longer than 320"):
        normalise(channel, value)
    assert len(normalise("webhook", "https://x.example/" + "a" * 302)) == 320


# ---- properties ------------------------------------------------------------------------------------

CHANNELS = ["sms", "email", "webhook"]
separators = st.sampled_from(["", " ", "-", "."])


@st.composite
def phone_like(draw):
    """Vietnamese and foreign numbers as people write them, valid or nearly."""
    prefix = draw(st.sampled_from(["0", "84", "+84", "+84 ", "0084", "(+84) ", "+1 ", "+86 ", "+", ""]))
    head = draw(st.sampled_from(["91", "98", "38", "70", "86", "24", "40", "1800", "9", "1", "6", "0"]))
    digits = draw(st.one_of(st.text("0123456789", min_size=7, max_size=7), st.text("0123456789", max_size=12)))
    sep = draw(separators)
    body = sep.join(digits[i:i + 3] for i in range(0, len(digits), 3))
    return f"{prefix}{head}{body}"


emails = st.one_of(st.emails(), st.builds(lambda a, b: f"{a}@{b}", st.text(max_size=20), st.text(max_size=20)))
webhooks = st.one_of(
    urls(),
    st.builds(lambda scheme, host, rest: f"{scheme}://{host}{rest}",
              st.sampled_from(["https", "HTTPS", "http", "Http"]),
              st.sampled_from(["localhost", "127.0.0.1", "[::1]", "Example.COM", "x.example.", "[2001:db8::1]",
                               "1.2.3.4", "a-b.c", "x.example:443", "x.example:80", "localhost:8000"]),
              st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=30)),
)
any_value = {"sms": st.one_of(phone_like(), st.text()), "email": st.one_of(emails, st.text()),
             "webhook": st.one_of(webhooks, st.text())}


def accepted(channel, value):
    try:
        return normalise(channel, value)
    except InvalidRecipient as exc:
        assert exc.field == channel and exc.message
        return None


@pytest.mark.parametrize("channel", CHANNELS)
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_normalise_is_idempotent_and_raises_only_invalid_recipient(channel, data):
    value = data.draw(any_value[channel])
    canonical = accepted(channel, value)  # any other exception fails the test
    if canonical is not None:
        assert normalise(channel, canonical) == canonical


@given(st.sampled_from(CHANNELS), st.text())
@example("sms", "+84 4000 00001")
@example("webhook", "https://[::1")
@example("webhook", "http://[v1.x]/")
@example("email", "\x00@x.example")
def test_arbitrary_text_on_any_channel(channel, value):
    canonical = accepted(channel, value)
    if canonical is not None:
        assert normalise(channel, canonical) == canonical


@given(phone_like())
def test_an_accepted_number_is_e164(value):
    canonical = accepted("sms", value)
    if canonical is not None:
        assert canonical.startswith("+") and canonical[1:].isdigit() and len(canonical) <= 16


@pytest.mark.parametrize("channel", CHANNELS)
@given(data=st.data())
def test_an_error_never_quotes_the_value(channel, data):
    """Errors reach API answers and logs; the value may be personal data or a URL with a token in it."""
    value = data.draw(st.one_of(any_value[channel], st.text(min_size=8)))
    try:
        normalise(channel, value)
    except InvalidRecipient as exc:
        if len(value.strip()) >= 8:
            assert value.strip() not in exc.message


def test_the_seed_directorys_placeholder_numbers_pass_only_where_allowed():
    """Development stacks send the directory's placeholders (+8400000xxxxx) to their local gateway;
    anywhere else they are invalid numbers, so a placeholder never reaches a real provider."""
    assert FICTITIOUS_SMS.fullmatch("+840000090001")
    assert normalise("sms", "+840000090001", allow_fictitious=True) == "+840000090001"
    with pytest.raises(InvalidRecipient):
        normalise("sms", "+840000090001")
    with pytest.raises(InvalidRecipient):  # only that exact range
        normalise("sms", "+8400000900011", allow_fictitious=True)
