"""What a provider's answer means for a notification, and a provider's delivery receipt, mapped."""
from dataclasses import dataclass
from enum import StrEnum

from schemas.events.notifications import DeliveryStatus


class Verdict(StrEnum):
    delivered = "delivered"  # done: SMTP 250 from our relay, a webhook receiver's 2xx
    accepted = "accepted"  # the provider took it (status sent); its receipt will say delivered or failed
    retry = "retry"  # temporary trouble: try again, and if time runs out, a temporary or technical failure
    permanent = "permanent"


TIMEOUT = "timeout"  # the code of a send whose provider did not answer in time (it may have taken it)


@dataclass(frozen=True)
class SendOutcome:
    verdict: Verdict
    code: str  # the provider's own code, kept for audit
    provider_ref: str | None = None
    # Which failure a retry that runs out becomes: recipient-side (temporary) or ours (technical).
    exhausts_to: str = "technical-failure"


@dataclass(frozen=True)
class Receipt:
    """A provider's word on one message: from a delivery callback, or from a status lookup."""

    provider_ref: str  # the provider's message id
    status: DeliveryStatus  # sent, delivered or one of the failures, per the provider's code map
    code: str  # the provider's own status or error code
    reference: str | None = None  # our notification id, when the provider echoes it back


# A lookup's answer when the provider has no such message: it never got it, so sending is safe.
NEVER_RECEIVED = Receipt(provider_ref="", status=DeliveryStatus.created, code="never-received")
