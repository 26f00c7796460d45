"""Events notify emits as an alert moves through its delivery states."""
from enum import StrEnum
from uuid import UUID

from pydantic import AwareDatetime, Field

from schemas.events.common import EventPayload


class NotificationChannel(StrEnum):
    """How an alert is sent: to one of the unit's contacts (email, sms), or to its system (webhook)."""

    email = "email"
    sms = "sms"
    webhook = "webhook"  # v1.1


class DeliveryStatus(StrEnum):
    """Delivery state of one alert."""

    created = "created"
    sending = "sending"
    sent = "sent"  # the provider took it; its delivery receipt is awaited (v1.1)
    delivered = "delivered"
    permanent_failure = "permanent-failure"
    temporary_failure = "temporary-failure"
    technical_failure = "technical-failure"


class NotificationStatusChanged(EventPayload):
    """A notification reached a new delivery status."""

    notification_id: UUID = Field(description="The notification (one alert to one contact).")
    referral_id: UUID = Field(description="The referral the alert is for.")
    case_id: UUID = Field(description="The case; also the Kafka key of the event.")
    channel: NotificationChannel = Field(description="How the alert is sent (webhook: v1.1).")
    status: DeliveryStatus = Field(description="The new delivery status.")
    occurred_at: AwareDatetime = Field(description="When the status changed.")
    attempts: int = Field(ge=0, description="Delivery attempts made so far.")
    recipient: str | None = Field(None, description="The agency unit's address the alert goes to (v1.1): a duty "
                                                    "contact, never a victim's or caller's.")
    provider: str | None = Field(None, description="The provider that took the last attempt, e.g. an SMS gateway's "
                                                   "name or 'smtp' (v1.1).")
    kind: str | None = Field(None, description="What the alert is about: the referral event that caused it, e.g. "
                                               "'referral.created' or 'referral.reminder' (v1.1).")
