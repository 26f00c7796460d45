"""Events referral emits about referrals of a case to an agency unit."""
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events.common import CommuneCode, EventPayload, ProvinceCode, Urgency
from schemas.vocab import Exploitation, Need


class ContactChannel(StrEnum):
    """How an agency unit is alerted."""

    email = "email"
    sms = "sms"


class ReferralStatus(StrEnum):
    created = "created"
    notified = "notified"  # an alert reached the unit
    acknowledged = "acknowledged"
    accepted = "accepted"
    declined = "declined"
    closed = "closed"


class TransitionSource(StrEnum):
    agency_api = "agency_api"  # the unit, through the referral API
    ack_link = "ack_link"  # the signed link in its SMS or email
    delivery = "delivery"  # notify reported an alert delivered
    hotline = "hotline"  # hotline staff


class DeclineReason(StrEnum):
    not_competent = "not_competent"  # not this unit's area or mandate
    no_capacity = "no_capacity"
    already_handled = "already_handled"
    other = "other"


class ReferralOutcome(StrEnum):
    investigation_opened = "investigation_opened"
    victims_rescued = "victims_rescued"
    victims_supported = "victims_supported"
    repatriated = "repatriated"
    not_substantiated = "not_substantiated"


class ReferralCause(StrEnum):
    matched = "matched"  # the rules chose the unit
    escalation = "escalation"  # an unacknowledged referral went one level up
    reroute = "reroute"  # a declined referral went to the next candidate


class AgencyContact(BaseModel):
    """How to reach the agency unit. Agency duty contacts, never a victim's or caller's."""

    model_config = ConfigDict(frozen=True)

    channel: ContactChannel = Field(description="How to send the alert.")
    address: str = Field(description="Email address or E.164 SMS number of the agency unit.")


class ReferralCreated(EventPayload):
    """A case was referred to an agency unit, which must acknowledge it by `acknowledge_by`."""

    referral_id: UUID = Field(description="The referral.")
    case_id: UUID = Field(description="The case referred; also the Kafka key of the event.")
    case_number: str = Field(description="Human-readable case number, e.g. '111-2026-000042'.")
    agency_unit_id: UUID = Field(description="The agency unit the case was referred to.")
    agency_unit_name: str = Field(description="Display name of the agency unit.")
    agency_kind: str = Field(description="Kind of unit, e.g. 'police_province'.")
    province_code: ProvinceCode
    urgency: Urgency = Field(description="Urgency of the case when it was referred.")
    acknowledge_by: AwareDatetime = Field(description="Deadline for the unit to acknowledge the referral.")
    match_reason: str = Field(description="Why this unit was chosen, for audit.")
    contacts: list[AgencyContact] = Field(description="Where to alert the unit first: its most preferred contact of "
                                                      "each channel, in order of preference (v1.1: was every "
                                                      "contact). A failed alert moves on to the unit's next contact "
                                                      "(referral.contact-fallback).")
    rule_ids: list[str] = Field(default_factory=list, description="The matching rules that chose the unit (v1.1).")
    agency_level: str | None = Field(None, description="The unit's level: commune, province, region, national "
                                                       "or international (v1.1).")
    identity_shared: bool = Field(False, description="Whether the referral may carry the victim's identity, per the "
                                                     "consent policy (v1.1). Never whether the unit is told.")
    cause: ReferralCause = Field(ReferralCause.matched, description="Why this referral exists (v1.1).")
    previous_referral_id: UUID | None = Field(None, description="The referral this one escalates or re-routes "
                                                                "(v1.1).")
    ack_url: str | None = Field(None, description="A signed link that acknowledges the referral in one click, "
                                                  "without a login; it expires after the escalation window (v1.1).")
    commune_code: CommuneCode | None = Field(None, description="The case's commune, when known (v1.1).")
    exploitation: list[Exploitation] = Field(default_factory=list, description="The case's exploitation purposes: "
                                                                              "its category (v1.1).")
    language: str = Field("vi", pattern=r"^[a-z]{2}$", description="The language to write to the unit in: "
                                                                   "Vietnamese, or English for a foreign "
                                                                   "counterpart (v1.1).")


class ReferralEvent(EventPayload):
    """What every event about one referral names first."""

    referral_id: UUID = Field(description="The referral.")
    case_id: UUID = Field(description="The case; also the Kafka key of the event.")
    case_number: str = Field(description="Human-readable case number.")
    agency_unit_id: UUID = Field(description="The agency unit it was referred to.")


class ReferralStatusChanged(ReferralEvent):
    """A referral moved in its lifecycle: created → notified → acknowledged → accepted or declined → closed."""

    from_status: ReferralStatus = Field(description="Status before.")
    to_status: ReferralStatus = Field(description="Status after.")
    via: TransitionSource = Field(description="What caused the change.")
    decline_reason: DeclineReason | None = Field(None, description="Why the unit declined, when it did.")
    changed_at: AwareDatetime = Field(description="When.")


class ReferralOutcomeRecorded(ReferralEvent):
    """An agency recorded a result of a referral. Counts and codes only."""

    agency_kind: str = Field(description="Kind of unit, e.g. 'police_province'.")
    province_code: ProvinceCode
    outcome: ReferralOutcome = Field(description="What happened.")
    victims: int | None = Field(None, ge=0, le=10_000, description="How many victims it concerns, when counted.")
    services: list[Need] = Field(default_factory=list, description="For victims_supported: which support.")
    recorded_at: AwareDatetime = Field(description="When.")


class ReferralReminder(ReferralEvent):
    """A referral was not acknowledged by its deadline: the unit is reminded before escalation."""

    agency_unit_name: str = Field(description="Display name of the agency unit.")
    urgency: Urgency = Field(description="Urgency of the case.")
    acknowledge_by: AwareDatetime = Field(description="The deadline that was missed.")
    escalate_at: AwareDatetime = Field(description="When it escalates if still unacknowledged.")
    contacts: list[AgencyContact] = Field(description="Where to remind the unit.")
    ack_url: str | None = Field(None, description="The signed acknowledge link, as in referral.created (v1.1).")
    language: str = Field("vi", pattern=r"^[a-z]{2}$", description="The language to write to the unit in (v1.1).")


class ReferralEscalated(ReferralEvent):
    """A referral stayed unacknowledged after its reminder (`referral_id`, at `agency_unit_id`): the case
    went one level up."""

    escalated_referral_id: UUID | None = Field(None, description="The new referral one level up; none when the "
                                                                 "top was reached.")
    to_level: str | None = Field(None, description="The level it went to.")
    escalated_at: AwareDatetime = Field(description="When.")


# The failed delivery states of notification.status-changed, spelled out here because that module
# imports this one.
FailedDelivery = Literal["permanent-failure", "temporary-failure", "technical-failure"]


class ReferralContactFallback(ReferralEvent):
    """An alert of the referral failed for good: the unit is alerted on its next contact."""

    contact: AgencyContact = Field(description="The contact to alert now: the unit's next by preference, on the "
                                               "failed channel when it has one left.")
    failed_channel: ContactChannel = Field(description="The channel of the alert that failed.")
    failed_status: FailedDelivery = Field(description="How it failed (the notification's delivery status).")
    occurred_at: AwareDatetime = Field(description="When the failure was reported.")
