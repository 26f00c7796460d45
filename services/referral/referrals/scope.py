"""Which referrals an agency token may see and act on: those of the units it names (claim agency_units)
and of every unit whose parent chain leads to one of them, e.g. a province police command and its
commune police. Another agency's referral does not exist for it (404, never 403)."""
from dataclasses import dataclass
from uuid import UUID

from runtime.auth import Principal
from runtime.problems import Forbidden
from services.referral.directory.model import DirectoryIndex


@dataclass(frozen=True)
class AgencyScope:
    subject: str  # who acts, for the record (outcomes' recorded_by)
    unit_ids: frozenset[UUID]

    def covers(self, unit_id: UUID) -> bool:
        return unit_id in self.unit_ids


def scope_of(principal: Principal, directory: DirectoryIndex) -> AgencyScope:
    if not principal.agency_units:
        raise Forbidden("This agency token names no agency units (claim agency_units).")
    return AgencyScope(principal.subject, frozenset(u.id for u in directory.units_under(principal.agency_units)))
