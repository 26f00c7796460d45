"""What an agency organisation's own system reads about its referrals, on a feed topic of its own.

A feed is a contract with a system we do not run: each message carries the referral's whole current
state as that organisation may see it (upsert it by `referral_id`), and no more. The payload model of a
feed IS its allowlist: a field the model lacks never leaves the hotline on that feed. No names, phone
numbers or free text ever: the referral service does not hold them. Fields change by addition only;
a new version is a new topic, produced alongside the old one until the agency has moved.
"""
from enum import StrEnum
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events.common import CommuneCode, CountryCode, EventPayload, ProvinceCode, Urgency
from schemas.events.referrals import DeclineReason, ReferralOutcome, ReferralStatus
from schemas.vocab import AgeBand, Exploitation, MeansOfControl, Need, RecruitmentChannel, Sex


class FeedChange(StrEnum):
    """What just happened to the referral."""

    referred = "referred"  # a new referral to one of the organisation's units
    reminded = "reminded"  # the unit missed its acknowledgement deadline
    escalated = "escalated"  # still unacknowledged: the case went one level up
    status_changed = "status-changed"  # acknowledged, accepted, declined, notified or closed
    outcome_recorded = "outcome-recorded"


class FeedVictim(BaseModel):
    """One potential victim, without a name or anything that identifies them."""

    model_config = ConfigDict(frozen=True)

    sex: Sex = Field(description="Sex of the potential victim.")
    age_band: AgeBand = Field(description="CTDC age band.")
    is_child: bool = Field(description="Under 18.")
    nationality: CountryCode | None = Field(None, description="Citizenship, if known.")


class FeedReferral(EventPayload):
    """What every agency feed carries: the referral to one of the organisation's units, and its state."""

    referral_id: UUID = Field(description="The referral: the key to upsert by. One per case and unit.")
    case_id: UUID = Field(description="The case; also the Kafka key, so a case's messages keep their order.")
    case_number: str = Field(description="Human-readable case number, to quote to the hotline.")
    unit_code: str = Field(description="The organisation's unit the case is referred to.")
    unit_name: str = Field(description="Display name of that unit.")
    unit_kind: str = Field(description="Kind of unit, e.g. 'police_province'.")
    change: FeedChange = Field(description="What just happened.")
    status: ReferralStatus = Field(description="The referral's status now.")
    urgency: Urgency = Field(description="Urgency of the case when it was referred.")
    province_code: ProvinceCode
    commune_code: CommuneCode | None = Field(None, description="Commune, when known.")
    acknowledge_by: AwareDatetime = Field(description="Deadline for the unit to acknowledge.")
    escalate_at: AwareDatetime | None = Field(None, description="For `reminded`: when it escalates if still "
                                                                 "unacknowledged.")
    escalated_to_level: str | None = Field(None, description="For `escalated`: the level the case went to.")
    identity_shared: bool = Field(description="The consent policy lets the hotline give this unit the victim's "
                                              "identity on request. Never sent here.")
    decline_reason: DeclineReason | None = Field(None, description="Why the unit declined, when it did.")
    outcome: ReferralOutcome | None = Field(None, description="For `outcome-recorded`: what happened.")
    outcome_victims: int | None = Field(None, ge=0, description="For `outcome-recorded`: victims it concerns.")
    occurred_at: AwareDatetime = Field(description="When the change happened.")


class LawEnforcementReferral(FeedReferral):
    """A referral as the police, the Border Guard or the Coast Guard may see it: the facts they act on."""

    immediate_danger: bool = Field(description="Someone is in danger now.")
    violence: bool = Field(description="Violence is used or threatened.")
    child_involved: bool = Field(description="At least one potential victim is under 18.")
    exploitation: list[Exploitation] = Field(default_factory=list, description="Exploitation purposes.")
    means_of_control: list[MeansOfControl] = Field(default_factory=list, description="CTDC means of control.")
    recruitment_channel: RecruitmentChannel | None = Field(None, description="How the person was recruited.")
    abroad_country: CountryCode | None = Field(None, description="Country where the person is, if abroad.")
    moving_across_border: bool = Field(description="The person is being moved across a border now.")
    destination_country: CountryCode | None = Field(None, description="Where the person is being moved to.")
    at_sea: bool = Field(description="The person is at sea or on a vessel.")
    victims: list[FeedVictim] = Field(default_factory=list, description="Potential victims, without names.")


class ConsularReferral(FeedReferral):
    """A referral as the consular department may see it: who is abroad and what support they need;
    nothing about the suspects or how the victims are controlled."""

    child_involved: bool = Field(description="At least one potential victim is under 18.")
    abroad_country: CountryCode | None = Field(None, description="Country where the person is, if abroad.")
    destination_country: CountryCode | None = Field(None, description="Where the person is being moved to.")
    victims: list[FeedVictim] = Field(default_factory=list, description="Potential victims, without names.")
    needs: list[Need] = Field(default_factory=list, description="Support the victims need, all together.")


# One model per feed, so each contract has its own name and can grow on its own.
class PoliceReferral(LawEnforcementReferral):
    """A referral to a police unit (commune, province or the anti-trafficking department), as the Ministry
    of Public Security's system sees it."""


class BorderGuardReferral(LawEnforcementReferral):
    """A referral to a Border Guard provincial command or border post, as the Border Guard's system sees it."""


class CoastGuardReferral(LawEnforcementReferral):
    """A referral to a Coast Guard regional command, as the Coast Guard's system sees it."""
