"""Events referral emits about referrals of a case to an agency unit."""
from enum import StrEnum
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events.common import EventPayload, ProvinceCode, Urgency


class ContactChannel(StrEnum):
    """How an agency unit is alerted."""

    email = "email"
    sms = "sms"


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
    contacts: list[AgencyContact] = Field(description="Where to alert the unit.")
    rule_ids: list[str] = Field(default_factory=list, description="The matching rules that chose the unit (v1.1).")
    agency_level: str | None = Field(None, description="The unit's level: commune, province, region, national "
                                                       "or international (v1.1).")
    identity_shared: bool = Field(False, description="Whether the referral may carry the victim's identity, per the "
                                                     "consent policy (v1.1). Never whether the unit is told.")
