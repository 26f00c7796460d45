"""Value types shared by several event payloads."""
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

ProvinceCode = Annotated[
    str, Field(pattern=r"^[0-9]{2}$", description="Province code of the 2025 map (two digits, e.g. '01').")
]
CommuneCode = Annotated[
    str, Field(pattern=r"^[0-9]{5}$", description="Commune/ward code of the 2025 map (five digits).")
]


class Urgency(StrEnum):
    """How fast a case needs action."""

    emergency = "emergency"
    high = "high"
    normal = "normal"


class Channel(StrEnum):
    """How a report reached the hotline."""

    phone = "phone"
    chat = "chat"
    sms = "sms"
    web_form = "web_form"
    walk_in = "walk_in"
    agency = "agency"


class EventPayload(BaseModel):
    """Base of every payload: unknown fields are kept out so consumers see only the contract."""

    model_config = ConfigDict(extra="ignore", frozen=True)


CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code.")]
