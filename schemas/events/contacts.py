"""Events intake emits about contacts: every call counts, case or not. No names, numbers or notes."""
from uuid import UUID

from pydantic import AwareDatetime, Field

from schemas.events.common import Channel, EventPayload, ProvinceCode
from schemas.vocab import AgeBand, CallerRole, ConsultationGiven, ConsultationTopic, ContactType, NonCaseReason, Sex


class ContactRecorded(EventPayload):
    """A contact with the hotline was recorded."""

    contact_id: UUID = Field(description="The contact; the Kafka key unless it belongs to a case.")
    case_id: UUID | None = Field(None, description="The case it is about, if any.")
    channel: Channel = Field(description="How the contact reached the hotline.")
    contact_type: ContactType = Field(description="What the contact was.")
    non_case_reason: NonCaseReason | None = Field(None, description="Why a non-case contact was not a case.")
    started_at: AwareDatetime = Field(description="When the contact started.")
    duration_s: int = Field(ge=0, description="Length of the contact in seconds.")
    language: str = Field(description="ISO 639-1 language of the contact.")
    caller_role: CallerRole = Field(description="Who contacted the hotline.")
    caller_sex: Sex = Field(description="Caller's sex.")
    caller_age_band: AgeBand = Field(description="Caller's CTDC age band.")
    caller_province_code: ProvinceCode | None = Field(None, description="Caller's province, if given.")
    repeat_caller: bool = Field(description="The same phone number has called before.")
    consent_callback: bool = Field(description="The caller agreed to be called back.")
    consent_share_identity: bool = Field(description="The caller agreed to share their identity with agencies.")
    consultation_topics: list[ConsultationTopic] = Field(default_factory=list, description="Consultation topics.")
    consultation_given: list[ConsultationGiven] = Field(default_factory=list, description="What was given.")


class ContactAttached(EventPayload):
    """A contact was attached to a case after it was recorded."""

    contact_id: UUID = Field(description="The contact.")
    case_id: UUID = Field(description="The case; also the Kafka key of the event.")
    contact_type: ContactType = Field(description="What the contact was.")
