"""What operators send about a case, and what intake answers. Personal data is answered only by the
audited personal-data endpoint."""
from datetime import datetime
from typing import Annotated, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from schemas.events.common import Channel, CommuneCode, CountryCode, ProvinceCode, Urgency
from schemas.events.referrals import DeclineReason, ReferralOutcome, ReferralStatus
from schemas.vocab import (
    CHILD_BANDS, AgeBand, CaseOutcome, CaseStatus, Exploitation, MeansOfControl, Need, RecruiterRelationship,
    RecruitmentChannel, Sex, TraffickerRole, age_band_for,
)
from schemas.geography import check_commune, check_province
from services.intake.timing import not_in_future

Text200 = Annotated[str, Field(min_length=1, max_length=200)]
Text2000 = Annotated[str, Field(min_length=1, max_length=2000)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VictimIn(_In):
    name: Text200 | None = Field(None, description="Stored encrypted; never emitted.")
    sex: Sex = Sex.unknown
    age: int | None = Field(None, ge=0, le=120)
    age_band: AgeBand | None = Field(None, description="CTDC band; derived from age when age is given.")
    is_child: bool | None = Field(None, description="Under 18; derived from age or band when given.")
    nationality: CountryCode | None = None
    ethnicity: Annotated[str, Field(max_length=100)] | None = Field(None, description="Stored encrypted.")
    current_province_code: ProvinceCode | None = None
    current_commune_code: CommuneCode | None = None
    needs: list[Need] = Field(default_factory=list, max_length=len(Need))

    _province = field_validator("current_province_code")(lambda cls, v: check_province(v))

    @field_validator("current_commune_code")
    @classmethod
    def _commune(cls, v: str | None, info: ValidationInfo) -> str | None:
        return check_commune(v, info.data.get("current_province_code"))

    # Field validators (not model validators) so that an error names its field.
    @field_validator("age_band", mode="after")
    @classmethod
    def _band_matches_age(cls, band: AgeBand | None, info: ValidationInfo) -> AgeBand | None:
        age = info.data.get("age")
        if age is not None and band is not None and band != age_band_for(age):
            raise ValueError(f"contradicts age {age}")
        return band

    @field_validator("is_child", mode="after")
    @classmethod
    def _child_matches_age(cls, is_child: bool | None, info: ValidationInfo) -> bool | None:
        known = _child_from(info.data.get("age"), info.data.get("age_band"))
        if is_child is not None and known is not None and is_child != known:
            raise ValueError("contradicts the age or age band")
        return is_child

    @model_validator(mode="after")
    def _derive(self) -> Self:
        if self.age is not None:
            self.age_band = age_band_for(self.age)
        known = _child_from(self.age, self.age_band)
        self.is_child = bool(self.is_child if self.is_child is not None else known)
        self.age_band = self.age_band or AgeBand.unknown
        return self


def _child_from(age: int | None, band: AgeBand | None) -> bool | None:
    if age is not None:
        return age < 18
    if band not in (None, AgeBand.unknown):
        return band in CHILD_BANDS
    return None


class TraffickerIn(_In):
    description: Text2000 | None = Field(None, description="Stored encrypted; never emitted.")
    role: TraffickerRole = TraffickerRole.unknown
    relationship: RecruiterRelationship = RecruiterRelationship.unknown


class CaseFactsIn(_In):
    """Facts shared by creating and updating a case."""

    province_code: ProvinceCode | None = None
    commune_code: CommuneCode | None = None
    abroad_country: CountryCode | None = Field(None, description="Where the person is, if abroad.")
    abroad_place: Text200 | None = Field(None, description="Place abroad; stored encrypted.")
    location_text: Text2000 | None = Field(None, description="Free-text location; stored encrypted.")
    moving_across_border: bool | None = Field(None, description="Being moved across a border now.")
    destination_country: CountryCode | None = None
    at_sea: bool | None = Field(None, description="At sea or on a vessel.")
    immediate_danger: bool | None = Field(None, description="Someone is in danger now.")
    violence: bool | None = Field(None, description="Violence used or threatened.")
    child_victim: bool | None = Field(None, description="A potential victim is under 18 (also derived from victims).")
    victims: list[VictimIn] | None = Field(None, max_length=50)
    traffickers: list[TraffickerIn] | None = Field(None, max_length=50)
    exploitation: list[Exploitation] | None = Field(None, max_length=len(Exploitation))
    means_of_control: list[MeansOfControl] | None = Field(None, max_length=len(MeansOfControl))
    recruitment_channel: RecruitmentChannel | None = None
    urgency: Urgency | None = Field(None, description="Operator's urgency; the computed floor applies if absent.")
    urgency_reason: Text2000 | None = Field(None, description="Required to go below the floor; stored encrypted.")
    narrative: Annotated[str, Field(min_length=1, max_length=20000)] | None = Field(
        None, description="Free text; stored encrypted, never emitted."
    )

    _province = field_validator("province_code")(lambda cls, v: check_province(v))

    @field_validator("commune_code")
    @classmethod
    def _commune(cls, v: str | None, info: ValidationInfo) -> str | None:
        return check_commune(v, info.data.get("province_code"))

    @field_validator("destination_country")
    @classmethod
    def _destination_needs_movement(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v and info.data.get("moving_across_border") is False:
            raise ValueError("only for a person being moved across a border now")
        return v


class CaseReportIn(CaseFactsIn):
    """A report of suspected trafficking. Codes follow the 2025 map (34 provinces, 3,321 communes)."""

    province_code: ProvinceCode  # required on creation: where it happens, or the home province if abroad
    channel: Channel = Channel.phone
    contact_id: UUID | None = Field(None, description="The contact this case comes from.")
    reported_at: AwareDatetime | None = Field(None, description="When reported; now if absent.")

    _reported = field_validator("reported_at")(lambda cls, v: not_in_future(v))


class CasePatch(CaseFactsIn):
    """Fields to change; absent fields stay. `victims` and `traffickers`, when given, replace the lists."""

    @field_validator("province_code")
    @classmethod
    def _province_stays(cls, v: str | None) -> str:
        if v is None:  # only an explicit null gets here: absent means unchanged
            raise ValueError("a case always has a province; give another one instead of null")
        return v


class StatusChangeIn(_In):
    status: CaseStatus
    outcome: CaseOutcome | None = Field(None, validate_default=True, description="Required when closing; only then.")

    @field_validator("outcome")
    @classmethod
    def _outcome_iff_closed(cls, v: CaseOutcome | None, info: ValidationInfo) -> CaseOutcome | None:
        if (info.data.get("status") == CaseStatus.closed) != (v is not None):
            raise ValueError("required when status is closed, and only then")
        return v


class VictimOut(BaseModel):
    sex: Sex
    age: int | None
    age_band: AgeBand
    is_child: bool
    nationality: str | None
    current_province_code: str | None
    current_commune_code: str | None
    needs: list[Need]


class TraffickerOut(BaseModel):
    role: TraffickerRole
    relationship: RecruiterRelationship


class CaseOut(BaseModel):
    id: UUID
    case_number: str
    version: int
    status: CaseStatus
    outcome: CaseOutcome | None
    channel: Channel
    operator: str
    province_code: str
    commune_code: str | None
    abroad_country: str | None
    moving_across_border: bool
    destination_country: str | None
    at_sea: bool
    immediate_danger: bool
    violence: bool
    child_victim: bool
    exploitation: list[Exploitation]
    means_of_control: list[MeansOfControl]
    recruitment_channel: RecruitmentChannel | None
    consent_share_identity: bool
    urgency: Urgency
    urgency_floor: Urgency
    reported_at: datetime
    updated_at: datetime
    victims: list[VictimOut] = []
    traffickers: list[TraffickerOut] = []


class CaseReferralOutcome(BaseModel):
    outcome: ReferralOutcome
    victims: int | None
    services: list[Need]
    recorded_at: datetime


class CaseReferral(BaseModel):
    """A referral of the case as referral's events told intake. No agency contacts, no personal data."""

    referral_id: UUID
    agency_unit_id: UUID
    agency_unit_name: str | None = Field(description="Null until intake has seen the referral made.")
    agency_kind: str | None = Field(description="e.g. 'police_commune'; null until the referral is seen made.")
    status: ReferralStatus
    decline_reason: DeclineReason | None
    outcomes: list[CaseReferralOutcome] = Field(description="What the agency recorded, oldest first.")
    updated_at: datetime = Field(description="When the referral last moved or got an outcome.")


class CaseDetail(CaseOut):
    """One case: the case's fields, and its referrals as they stand."""

    referrals: list[CaseReferral] = Field(description="Its referrals to agency units, oldest first.")


class CasePage(BaseModel):
    items: list[CaseOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class PersonalDataOut(BaseModel):
    """Names and free text of a case. Every read is written to the audit log."""

    narrative: str | None
    urgency_reason: str | None
    abroad_place: str | None
    location_text: str | None
    victims: list[dict]
    traffickers: list[dict]
    notes: list[dict]


class NoteIn(_In):
    text: Annotated[str, Field(min_length=1, max_length=10000)] = Field(description="Stored encrypted.")


class NoteOut(BaseModel):
    id: UUID
    author: str
    created_at: datetime
