"""Test mode: magic recipients whose outcome is simulated, for agencies' drills."""
import phonenumbers
import pytest

from schemas.events.notifications import DeliveryStatus
from services.notify.delivery.outcome import Receipt, SendOutcome, Verdict
from services.notify.delivery.providers import OutgoingMessage, Provider
from services.notify.delivery.simulated import (
    EMAIL,
    RECIPIENTS,
    SMS,
    WEBHOOK,
    Simulated,
    SimulatedProvider,
    simulated,
    simulated_outcome,
)
from services.notify.recipients import normalise

D, T, P = Simulated.delivered, Simulated.temporary_failure, Simulated.permanent_failure
TABLE = [
    ("sms", "+84400000001", D), ("sms", "+84400000002", T), ("sms", "+84400000003", P),
    ("email", "delivered@simulator.hotline111.example", D),
    ("email", "temporary-failure@simulator.hotline111.example", T),
    ("email", "permanent-failure@simulator.hotline111.example", P),
    ("webhook", "https://simulator.hotline111.example/webhooks/delivered", D),
    ("webhook", "https://simulator.hotline111.example/webhooks/temporary-failure", T),
    ("webhook", "https://simulator.hotline111.example/webhooks/permanent-failure", P),
]


def test_the_documented_table_is_the_whole_table():
    assert sorted((c, r, k) for c, table in RECIPIENTS.items() for r, k in table.items()) == sorted(TABLE)


@pytest.mark.parametrize("channel, recipient, kind", TABLE)
def test_each_magic_recipient_simulates_its_outcome(channel, recipient, kind):
    outcome = simulated_outcome(channel, recipient)
    expected = {
        D: SendOutcome(Verdict.delivered, "simulated-delivered"),
        # Retried like a phone that is off, and then recorded as the recipient's failure, not ours.
        T: SendOutcome(Verdict.retry, "simulated-temporary-failure", exhausts_to="temporary-failure"),
        P: SendOutcome(Verdict.permanent, "simulated-permanent-failure"),
    }[kind]
    assert outcome == expected


@pytest.mark.parametrize("channel, recipient, kind", TABLE)
def test_magic_recipients_are_valid_recipients_already_in_canonical_form(channel, recipient, kind):
    assert normalise(channel, recipient) == recipient


@pytest.mark.parametrize("number", sorted(SMS))
def test_magic_numbers_are_not_real_numbers(number):
    """No operator can deliver to them: if a phonenumbers upgrade ever assigns the block, this fails."""
    parsed = phonenumbers.parse(number)
    assert not phonenumbers.is_valid_number(parsed)
    assert phonenumbers.number_type(parsed) is phonenumbers.PhoneNumberType.UNKNOWN
    assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == number  # no rewriting


@pytest.mark.parametrize("written", ["0400 000 001", "+84 400 000 001", "84400000001", "(+84) 400-000-001"])
def test_magic_numbers_can_be_written_the_usual_ways(written):
    assert simulated("sms", normalise("sms", written)) is D


def test_magic_domains_are_reserved_and_emails_match_in_any_case():
    assert all(r.split("@")[1].endswith(".example") for r in EMAIL)  # RFC 2606: never a real mailbox
    assert all(r.startswith("https://simulator.hotline111.example/") for r in WEBHOOK)
    assert simulated("email", "Delivered@Simulator.Hotline111.example") is D


@pytest.mark.parametrize("channel, recipient", [
    ("sms", "+84912345678"), ("sms", "+84400000004"), ("sms", "delivered@simulator.hotline111.example"),
    ("email", "someone@simulator.hotline111.example"), ("email", "+84400000001"),
    ("webhook", "https://simulator.hotline111.example/webhooks/other"),
    ("webhook", "https://simulator.hotline111.example/webhooks/delivered?x=1"),
    ("fax", "+84400000001"),
])
def test_other_recipients_are_real(channel, recipient):
    assert simulated(channel, recipient) is None and simulated_outcome(channel, recipient) is None


# ---- the provider ----------------------------------------------------------------------------------

def message(recipient, notification_id="n-1"):
    return OutgoingMessage(notification_id=notification_id, recipient=recipient, body="drill")


def test_the_provider_fits_the_protocol():
    provider: Provider = SimulatedProvider("sms")
    assert provider.name == "simulator" and provider.channel == "sms"


def test_a_provider_needs_a_channel_with_magic_recipients():
    with pytest.raises(ValueError):
        SimulatedProvider("fax")


@pytest.mark.parametrize("channel, recipient, kind", TABLE)
async def test_the_provider_answers_as_the_table_says_and_lookup_agrees(channel, recipient, kind):
    provider = SimulatedProvider(channel)
    outcome = await provider.send(message(recipient))
    assert (outcome.verdict, outcome.code) == (simulated_outcome(channel, recipient).verdict, f"simulated-{kind}")
    receipt = await provider.lookup(outcome.provider_ref, "n-1")
    if kind is T:  # nothing was taken, so nothing to find: the dispatcher sends again
        assert outcome.provider_ref is None and receipt is None
    else:
        assert receipt == Receipt(outcome.provider_ref, DeliveryStatus(kind), f"simulated-{kind}", reference="n-1")
    await provider.aclose()


async def test_a_real_recipient_routed_to_the_simulator_fails_and_is_never_sent():
    outcome = await SimulatedProvider("email").send(message("duty@police.example"))
    assert outcome == SendOutcome(Verdict.permanent, "simulator-unknown-recipient")


@pytest.mark.parametrize("ref, reference", [
    (None, "n-1"), ("", "n-1"), ("other-provider-ref", "n-1"), ("simulated:delivered:n-2", "n-1"),
    ("simulated:sent:n-1", "n-1"), ("simulated:", "n-1"),
])
async def test_lookup_says_nothing_of_what_it_did_not_send(ref, reference):
    assert await SimulatedProvider("sms").lookup(ref, reference) is None
