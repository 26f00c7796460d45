"""What an operator sends to report a case, and what intake answers."""
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from schemas.events.common import Channel, CommuneCode, ProvinceCode, Urgency
from schemas.geography import communes, provinces


class CaseReportIn(BaseModel):
    """A report of suspected trafficking. Codes follow the 2025 map (34 provinces, 3,321 communes)."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel = Channel.phone
    province_code: ProvinceCode
    commune_code: CommuneCode | None = None
    immediate_danger: bool = Field(False, description="Someone is in danger now.")
    child_victim: bool = Field(False, description="A potential victim is under 18.")
    urgency: Urgency | None = Field(None, description="Operator's urgency; the computed floor applies if absent.")
    urgency_reason: str | None = Field(None, max_length=2000, description="Required to go below the floor.")
    narrative: str | None = Field(None, max_length=20000, description="Free text; stored encrypted, never emitted.")

    @field_validator("province_code")
    @classmethod
    def _known_province(cls, code: str) -> str:
        if code not in provinces():
            raise ValueError(f"unknown province code {code!r} on the 2025 map")
        return code

    @field_validator("commune_code")
    @classmethod
    def _commune_in_province(cls, code: str | None, info: ValidationInfo) -> str | None:
        if code is None:
            return None
        commune = communes().get(code)
        if commune is None:
            raise ValueError(f"unknown commune code {code!r} on the 2025 map")
        province = info.data.get("province_code")
        if province is not None and commune[1] != province:
            raise ValueError(f"commune {code!r} is not in province {province!r}")
        return code


class CaseOut(BaseModel):
    id: UUID
    case_number: str
    status: str
    channel: Channel
    province_code: str
    commune_code: str | None
    urgency: Urgency
    urgency_floor: Urgency
    reported_at: datetime
