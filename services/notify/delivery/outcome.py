"""What a provider's answer means for a notification: done, try again, or give up."""
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    delivered = "delivered"
    retry = "retry"  # temporary trouble: try again, and if attempts run out, a temporary or technical failure
    permanent = "permanent"


@dataclass(frozen=True)
class SendOutcome:
    verdict: Verdict
    code: str  # the provider's own code, kept for audit
    provider_ref: str | None = None
    # Which failure a retry that runs out becomes: recipient-side (temporary) or ours (technical).
    exhausts_to: str = "technical-failure"
