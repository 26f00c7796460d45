"""A contact with the hotline: every call counts, case or not."""
from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from runtime.crypto import normalise_phone
from schemas.events.common import Channel, CommuneCode, ProvinceCode
from schemas.vocab import AgeBand, CallerRole, ConsultationGiven, ConsultationTopic, ContactType, NonCaseReason, Sex
from schemas.geography import check_commune, check_province
from services.intake.timing import not_in_future

MAX_CONTACT = timedelta(hours=24)


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel
    contact_type: ContactType
    non_case_reason: NonCaseReason | None = Field(None, validate_default=True,
                                                  description="Required for a non-case contact, only then.")
    started_at: AwareDatetime
    ended_at: AwareDatetime
    language: Annotated[str, Field(pattern=r"^[a-z]{2}$")] = Field("vi", description="ISO 639-1 code.")
    caller_role: CallerRole = CallerRole.anonymous
    caller_name: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(None, description="Encrypted.")
    caller_phone: Annotated[str, Field(min_length=3, max_length=32)] | None = Field(
        None, description="Encrypted; a keyed hash of it recognises repeat callers."
    )
    caller_sex: Sex = Sex.unknown
    caller_age_band: AgeBand = AgeBand.unknown
    caller_province_code: ProvinceCode | None = None
    caller_commune_code: CommuneCode | None = None
    consent_callback: bool = False
    consent_share_identity: bool = False
    consultation_topics: list[ConsultationTopic] = Field(default_factory=list, max_length=len(ConsultationTopic),
                                                         validate_default=True)
    consultation_given: list[ConsultationGiven] = Field(default_factory=list, max_length=len(ConsultationGiven))
    notes: Annotated[str, Field(min_length=1, max_length=5000)] | None = Field(None, description="Encrypted.")
    case_id: UUID | None = Field(None, validate_default=True, description="The case it is about; required for a follow-up.")

    @field_validator("non_case_reason")
    @classmethod
    def _reason_iff_non_case(cls, v, info: ValidationInfo):
        if (info.data.get("contact_type") == ContactType.non_case) != (v is not None):
            raise ValueError("required for a non-case contact, and only then")
        return v

    _started = field_validator("started_at")(lambda cls, v: not_in_future(v))

    @field_validator("ended_at")
    @classmethod
    def _ended_after_started(cls, v: datetime, info: ValidationInfo) -> datetime:
        not_in_future(v)
        started = info.data.get("started_at")
        if started is not None and v < started:
            raise ValueError("must not be before started_at")
        if started is not None and v - started > MAX_CONTACT:
            raise ValueError("a contact cannot last more than 24 hours")
        return v

    @field_validator("caller_phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return None if v is None else normalise_phone(v)

    _province = field_validator("caller_province_code")(lambda cls, v: check_province(v))

    @field_validator("caller_commune_code")
    @classmethod
    def _commune(cls, v, info: ValidationInfo):
        return check_commune(v, info.data.get("caller_province_code"))

    @field_validator("consent_callback")
    @classmethod
    def _callback_needs_phone(cls, v: bool, info: ValidationInfo) -> bool:
        if v and not info.data.get("caller_phone"):
            raise ValueError("a callback needs the caller's phone number")
        return v

    @field_validator("consultation_topics")
    @classmethod
    def _consultation_has_topics(cls, v: list, info: ValidationInfo) -> list:
        if info.data.get("contact_type") == ContactType.consultation and not v:
            raise ValueError("a consultation records at least one topic")
        return v

    @field_validator("case_id")
    @classmethod
    def _follow_up_has_case(cls, v, info: ValidationInfo):
        if info.data.get("contact_type") == ContactType.follow_up and v is None:
            raise ValueError("a follow-up names the case it follows")
        return v


class ContactOut(BaseModel):
    id: UUID
    case_id: UUID | None
    channel: Channel
    contact_type: ContactType
    non_case_reason: NonCaseReason | None
    started_at: datetime
    ended_at: datetime
    duration_s: int
    operator: str
    language: str
    caller_role: CallerRole
    caller_sex: Sex
    caller_age_band: AgeBand
    caller_province_code: str | None
    caller_commune_code: str | None
    consent_callback: bool
    consent_share_identity: bool
    consultation_topics: list[ConsultationTopic]
    consultation_given: list[ConsultationGiven]
    earlier_contacts_from_number: int = Field(0, description="Earlier contacts from the same phone number.")
    caller_blocked_until: datetime | None = Field(None, description="The number is blocked by a supervisor until then.")


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class ContactPersonalDataOut(BaseModel):
    """Caller's name, phone number and notes. Every read is written to the audit log."""

    caller_name: str | None
    caller_phone: str | None
    notes: str | None


class AttachIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: UUID
