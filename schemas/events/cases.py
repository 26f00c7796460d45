"""Events intake emits about cases. No names, phone numbers or free text: only codes, flags, counts."""
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events.common import Channel, CommuneCode, CountryCode, EventPayload, ProvinceCode, Urgency
from schemas.vocab import AgeBand, CaseOutcome, CaseStatus, Exploitation, MeansOfControl, Need, RecruitmentChannel, Sex


class VictimSummary(BaseModel):
    """What referral and reporting need about one potential victim: never a name."""

    model_config = ConfigDict(frozen=True)

    sex: Sex = Field(description="Sex of the potential victim.")
    age_band: AgeBand = Field(description="CTDC age band.")
    is_child: bool = Field(description="Under 18: no force or deception needs to be shown.")
    nationality: CountryCode | None = Field(None, description="Citizenship, if known.")
    needs: list[Need] = Field(default_factory=list, description="Support the person needs.")


class CaseFacts(EventPayload):
    """The facts of a case that downstream services act on. Fields after `urgency` were added in v1.1."""

    case_id: UUID = Field(description="The case; also the Kafka key of the event.")
    case_number: str = Field(description="Human-readable case number, e.g. '111-2026-000042'.")
    province_code: ProvinceCode = Field(description="Where it happens or, for a case abroad, the home province.")
    commune_code: CommuneCode | None = Field(None, description="Commune, when known.")
    urgency: Urgency = Field(description="How fast the case needs action.")
    version: int = Field(1, ge=1, description="The case's version after this change.")
    victims: list[VictimSummary] = Field(default_factory=list, description="Potential victims, without names.")
    child_involved: bool = Field(False, description="At least one potential victim is under 18.")
    exploitation: list[Exploitation] = Field(default_factory=list, description="Exploitation purposes.")
    means_of_control: list[MeansOfControl] = Field(default_factory=list, description="CTDC means of control.")
    recruitment_channel: RecruitmentChannel | None = Field(None, description="How the person was recruited.")
    immediate_danger: bool = Field(False, description="Someone is in danger now.")
    violence: bool = Field(False, description="Violence is used or threatened.")
    abroad_country: CountryCode | None = Field(None, description="Country where the person is, if abroad.")
    moving_across_border: bool = Field(False, description="The person is being moved across a border now.")
    destination_country: CountryCode | None = Field(None, description="Where the person is being moved to.")
    at_sea: bool = Field(False, description="The person is at sea or on a vessel.")
    consent_share_identity: bool = Field(False, description="The caller agreed to share their identity.")


class CaseReported(CaseFacts):
    """A report of suspected trafficking became a case."""

    reported_at: AwareDatetime = Field(description="When the report was received.")
    channel: Channel = Field(description="How the report reached the hotline.")


class CaseUpdated(CaseFacts):
    """Facts of a case changed; `changed` names the fields (never their old values)."""

    changed: list[str] = Field(description="Names of the fields that changed.")
    updated_at: AwareDatetime = Field(description="When the change was made.")


class CaseStatusChanged(EventPayload):
    """A case moved in its lifecycle: open → referred → in progress → closed (with an outcome)."""

    case_id: UUID = Field(description="The case; also the Kafka key of the event.")
    case_number: str = Field(description="Human-readable case number.")
    province_code: ProvinceCode = Field(description="The case's province.")
    version: int = Field(ge=1, description="The case's version after this change.")
    from_status: CaseStatus = Field(description="Status before.")
    to_status: CaseStatus = Field(description="Status after.")
    outcome: CaseOutcome | None = Field(None, description="Set when the case is closed.")
    changed_at: AwareDatetime = Field(description="When the status changed.")


class CaseMerged(EventPayload):
    """A case was found to duplicate another; it is closed and points at the surviving case. Both keep
    their histories."""

    case_id: UUID = Field(description="The duplicate, now closed; also the Kafka key of the event.")
    case_number: str = Field(description="Its case number.")
    into_case_id: UUID = Field(description="The surviving case.")
    into_case_number: str = Field(description="The surviving case's number.")
    merged_at: AwareDatetime = Field(description="When the supervisor merged them.")


class CaseNoteAdded(EventPayload):
    """A note was added to a case. The text stays in intake, encrypted."""

    case_id: UUID = Field(description="The case; also the Kafka key of the event.")
    case_number: str = Field(description="Its case number.")
    note_id: UUID = Field(description="The note.")
    added_at: AwareDatetime = Field(description="When it was added.")
