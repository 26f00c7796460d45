"""What an agency sends and sees. An agency sees only its own referral: the case's number, urgency and
place, its own unit, why it was chosen, its deadlines and status; never another unit's referral, the
trace of other rules, or personal data."""
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.events.referrals import DeclineReason, ReferralCause, ReferralOutcome, ReferralStatus
from schemas.vocab import Need


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeclineIn(Strict):
    reason: DeclineReason


class OutcomeIn(Strict):
    """Counts and codes, never names."""

    outcome: ReferralOutcome
    victims: int | None = Field(None, ge=1, le=10_000, description="How many victims it concerns; required for "
                                                                   "victims_rescued and repatriated.")
    services: list[Need] = Field(default_factory=list, max_length=len(Need),
                                 description="The support given; required for victims_supported, only there.")


class UnitOut(BaseModel):
    id: UUID
    code: str
    name: str
    kind: str
    level: str


class OutcomeOut(BaseModel):
    outcome: ReferralOutcome
    victims: int | None
    services: list[Need]
    recorded_at: datetime


class ReferralState(BaseModel):
    """Where a referral stands, as staff and its agency both see it."""

    id: UUID
    case_number: str
    urgency: str
    province_code: str
    rule_ids: list[str] = Field(description="The rules that chose this unit.")
    match_reason: str = Field(description="Why this unit was chosen, in words.")
    identity_shared: bool = Field(description="Whether the hotline may share the victim's identity with this "
                                              "unit on request (the consent policy).")
    cause: ReferralCause
    status: ReferralStatus
    version: int = Field(description="Also the ETag: send it back in If-Match to act on the referral.")
    acknowledge_by: datetime
    created_at: datetime
    notified_at: datetime | None
    acknowledged_at: datetime | None
    accepted_at: datetime | None
    declined_at: datetime | None
    decline_reason: str | None
    closed_at: datetime | None


class AgencyReferralOut(ReferralState):
    commune_code: str | None
    unit: UnitOut
    outcomes: list[OutcomeOut]


class AgencyReferralPage(BaseModel):
    items: list[AgencyReferralOut]
    next_cursor: str | None


class DeclineOut(AgencyReferralOut):
    rerouted: bool = Field(description="Whether the case went on to another unit.")
    detail: str


class AckPreview(BaseModel):
    """What an acknowledge link points at, before anyone presses the button."""

    referral_id: UUID
    case_number: str
    status: ReferralStatus
    acknowledged_at: datetime | None


class AckOut(BaseModel):
    """The answer to pressing the button of an acknowledge link."""

    referral_id: UUID
    case_number: str
    status: ReferralStatus
    acknowledged_at: datetime
    already_acknowledged: bool
    detail: str
