"""What the dispatcher asks of a provider. Email (SMTP), SMS gateways and webhooks each implement it."""
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from services.notify.delivery.outcome import Receipt, SendOutcome


@dataclass(frozen=True)
class OutgoingMessage:
    notification_id: str  # our reference: sent to the provider where it takes one (idempotency, lookup)
    recipient: str  # E.164 number, email address, or webhook URL
    body: str
    subject: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    webhook_endpoint_id: UUID | None = None  # a webhook's endpoint: whose secrets sign it


class BadCallback(ValueError):
    """A delivery callback that is not from the provider (bad signature) or cannot be read: a 4xx, no change."""


class Provider(Protocol):
    name: str  # stable: stored on each notification it sends
    channel: str  # email | sms | webhook

    async def send(self, message: OutgoingMessage) -> SendOutcome: ...

    async def lookup(self, provider_ref: str | None, reference: str) -> Receipt | None:
        """The provider's status of a message (after a crash mid-send); None when it cannot tell."""
        ...

    async def aclose(self) -> None: ...


class ReceiptParser(Protocol):
    """A provider that reports delivery by calling back (SMS gateways)."""

    def receipt(self, body: bytes, headers: Mapping[str, str], url: str) -> Receipt:
        """Verify and map one callback; raise BadCallback when it is not authentic or not readable."""
        ...

