"""Test mode (after GOV.UK Notify's test numbers): recipients whose outcome is simulated, never sent.

Agencies put these in the directory to run drills end to end: the message goes through the whole
pipeline and comes out delivered, failed for now, or failed for good, without touching a real phone,
mailbox or endpoint. Whether test mode is on, and so whether messages are routed here, is decided by
the caller; this module only says what each recipient simulates.

The phone numbers are in the 04 block (+84 4..), in which Vietnam's numbering plan, as the
phonenumbers library holds it, has no number of any type, so no operator can deliver to them. (Hanoi's
fixed lines left 04 for 024 in 2017.) No fictional range is documented for Vietnam the way Ofcom keeps
07700 900xxx for drama. The +84 0... placeholders of the seed directory cannot be used: a leading 0 is
the trunk prefix, and phonenumbers rewrites such numbers. A test pins that none of these numbers is valid.
"""
from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from schemas.events.notifications import DeliveryStatus
from services.notify.delivery.outcome import Receipt, SendOutcome, Verdict
from services.notify.delivery.providers import OutgoingMessage

NAME = "simulator"
EMAIL_DOMAIN = "simulator.hotline111.example"  # RFC 2606 reserved: never a real mailbox
WEBHOOK_BASE = f"https://{EMAIL_DOMAIN}/webhooks/"


class Simulated(StrEnum):
    delivered = "delivered"
    temporary_failure = "temporary-failure"  # retried, then temporary-failure: the phone off, a full mailbox
    permanent_failure = "permanent-failure"  # no retry: an unknown number or mailbox, a 410 Gone


SMS: dict[str, Simulated] = {  # E.164
    "+84400000001": Simulated.delivered,
    "+84400000002": Simulated.temporary_failure,
    "+84400000003": Simulated.permanent_failure,
}
EMAIL: dict[str, Simulated] = {f"{s}@{EMAIL_DOMAIN}": s for s in Simulated}
WEBHOOK: dict[str, Simulated] = {f"{WEBHOOK_BASE}{s}": s for s in Simulated}
RECIPIENTS: dict[str, dict[str, Simulated]] = {"sms": SMS, "email": EMAIL, "webhook": WEBHOOK}

_REF = "simulated:"  # provider_ref = simulated:<outcome>:<notification id>, so lookup can answer
_KINDS = {s.value for s in Simulated}


def simulated(channel: str, recipient: str) -> Simulated | None:
    """What a recipient simulates; None when it is a real one. Expects the normalised form
    (recipients.normalise), though email addresses match in any case."""
    table = RECIPIENTS.get(channel)
    if table is None:
        return None
    return table.get(recipient.lower() if channel == "email" else recipient)


def simulated_outcome(channel: str, recipient: str) -> SendOutcome | None:
    kind = simulated(channel, recipient)
    if kind is None:
        return None
    code = f"simulated-{kind}"
    if kind is Simulated.delivered:
        return SendOutcome(Verdict.delivered, code)
    if kind is Simulated.temporary_failure:
        return SendOutcome(Verdict.retry, code, exhausts_to=DeliveryStatus.temporary_failure.value)
    return SendOutcome(Verdict.permanent, code)


class SimulatedProvider:
    """A Provider for the simulated recipients of one channel. It sends nothing, anywhere."""

    name = NAME

    def __init__(self, channel: str):
        if channel not in RECIPIENTS:
            raise ValueError(f"no simulated recipients for channel {channel!r}")
        self.channel = channel

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        outcome = simulated_outcome(self.channel, message.recipient)
        if outcome is None:
            # Routed here by mistake: fail it rather than pretend, so a drill shows the wrong contact.
            return SendOutcome(Verdict.permanent, "simulator-unknown-recipient")
        if outcome.verdict is Verdict.retry:
            return outcome  # nothing was "taken", so there is nothing to look up
        return replace(outcome, provider_ref=f"{_REF}{simulated(self.channel, message.recipient)}:"
                                             f"{message.notification_id}")

    async def lookup(self, provider_ref: str | None, reference: str) -> Receipt | None:
        if not provider_ref or not provider_ref.startswith(_REF):
            return None
        kind, _, notification_id = provider_ref.removeprefix(_REF).partition(":")
        if kind not in _KINDS or notification_id != reference:
            return None
        return Receipt(provider_ref, DeliveryStatus(kind), f"simulated-{kind}", reference=notification_id)

    async def aclose(self) -> None:
        return None
