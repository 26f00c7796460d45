"""Events referral emits when the agency directory changes: codes and status, never contact details."""
from enum import StrEnum
from uuid import UUID

from pydantic import AwareDatetime, Field

from schemas.events.common import CommuneCode, EventPayload, ProvinceCode


class DirectoryChange(StrEnum):
    """What happened to the unit."""

    created = "created"
    updated = "updated"  # any field other than status and last_verified changed
    status_changed = "status_changed"  # only the status changed (e.g. deactivated)
    verified = "verified"  # only the date its data was last verified moved


class DirectoryUnitChanged(EventPayload):
    """An agency unit was created or changed through the directory API or an import."""

    unit_id: UUID = Field(description="The unit; referrals name it by this id.")
    code: str = Field(description="The unit's directory code, e.g. 'police-province-01'; also the Kafka key.")
    kind: str = Field(description="Kind of unit, e.g. 'police_commune'.")
    level: str = Field(description="How far its service area reaches: commune, province, region, national or "
                                   "international.")
    province_code: ProvinceCode | None = Field(None, description="Province of its service area, if any.")
    commune_code: CommuneCode | None = Field(None, description="Commune of its service area, if any.")
    status: str = Field(description="active, inactive or temporarily_closed.")
    version: int = Field(ge=1, description="The unit's version after this change.")
    change: DirectoryChange = Field(description="What happened to the unit.")
    changed_at: AwareDatetime = Field(description="When the change was committed.")
