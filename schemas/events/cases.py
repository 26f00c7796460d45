"""Events intake emits about cases. No names, phone numbers or free text: only codes and flags."""
from uuid import UUID

from pydantic import AwareDatetime, Field

from schemas.events.common import Channel, CommuneCode, EventPayload, ProvinceCode, Urgency


class CaseReported(EventPayload):
    """A report of suspected trafficking became a case."""

    case_id: UUID = Field(description="The case; also the Kafka key of the event.")
    case_number: str = Field(description="Human-readable case number, e.g. '111-2026-000042'.")
    reported_at: AwareDatetime = Field(description="When the report was received.")
    channel: Channel = Field(description="How the report reached the hotline.")
    province_code: ProvinceCode
    commune_code: CommuneCode | None = None
    urgency: Urgency = Field(description="How fast the case needs action.")
