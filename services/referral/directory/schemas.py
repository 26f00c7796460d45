"""What the directory API takes and gives. A unit travels in the directory file's YAML form (codec.py), so
what GET answers can be sent back to PUT, and one validator, the codec's, judges API bodies and files alike."""
from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.events.directory import DirectoryChange
from services.referral.directory.model import Level, Service, UnitKind, UnitStatus


def _one_of(enum: type[StrEnum]) -> str:
    return "One of: " + ", ".join(enum) + "."


class Format(StrEnum):
    csv = "csv"
    yaml = "yaml"


class ContactIn(BaseModel):
    """An agency's duty contact: never a victim's or a caller's."""

    model_config = ConfigDict(extra="forbid", strict=True)

    channel: str = Field(description="email or sms.")
    address: str = Field(description="An email address, or an E.164 number (+84...) for sms.")
    preference: int = Field(1, description="1 is tried first (1-99).")
    duty_24_7: bool = Field(False, description="Answered at any hour: the unit counts as open.")


class UnitFields(BaseModel):
    """Everything about a unit but its code and id. Checked like a row of a directory file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str = Field(description=_one_of(UnitKind))
    level: str = Field(description=_one_of(Level))
    parent_code: str | None = Field(None, description="The unit above it (escalation, agency scope); must exist.")
    province_code: str | None = Field(None, description="Province of its service area (2025 map).")
    commune_code: str | None = Field(None, description="Commune of its service area; must lie in the province.")
    region: str | None = Field(None, description="Hotline region: north, central or south.")
    country: str | None = Field(None, description="ISO 3166-1 alpha-2, for a counterpart abroad.")
    services: list[str] = Field(default_factory=list, description=_one_of(Service))
    languages: list[str] = Field(default_factory=list, description="Language codes, e.g. vi.")
    opening_hours: list[str] = Field(default_factory=list, description="Local time, e.g. 'mon-fri 07:30-17:00'.")
    status: str = Field("active", description=_one_of(UnitStatus))
    last_verified: date | None = Field(None, description="When its data was last checked with the unit.")
    contacts: list[ContactIn] = Field(default_factory=list)
    source: str = Field("", description="Where its data comes from.")


class UnitIn(UnitFields):
    code: str = Field(description="Unique, for good: lower-case letters, digits, . _ - (at most 64).")


class UnitOut(UnitFields):
    id: UUID
    code: str
    version: int = Field(description="Also the ETag: send it back in If-Match to change the unit.")
    updated_at: datetime


class UnitPage(BaseModel):
    items: list[UnitOut]
    next_cursor: str | None


class UnitQuery(BaseModel):
    """Filters of a unit listing; every one given must hold."""

    kind: UnitKind | None = None
    level: Level | None = None
    province_code: str | None = Field(None, pattern=r"^[0-9]{2}$")
    commune_code: str | None = Field(None, pattern=r"^[0-9]{5}$")
    status: UnitStatus | None = None
    stale: bool = Field(False, description="Only active units last verified longer ago than DIRECTORY_STALE_DAYS, "
                                           "or never.")
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(100, ge=1, le=500)


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: UnitStatus


class ImportedUnit(BaseModel):
    row: int = Field(description="CSV line where the unit starts (header = 1), or its 1-based YAML item.")
    code: str
    change: DirectoryChange


class ImportOut(BaseModel):
    dry_run: bool = Field(description="True: nothing was written; the counts say what an import would do.")
    created: int
    updated: int = Field(description="Units changed in any way (status and verification dates included).")
    unchanged: int
    changes: list[ImportedUnit] = Field(description="Every unit created or changed, in file order.")
