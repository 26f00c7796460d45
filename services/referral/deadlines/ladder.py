"""Where an unacknowledged referral goes next: commune → province → regional centre → national.

A commune unit climbs to its parent (commune police → province police), or to the province police
when it has none; a province unit to the hotline's centre for its region; a regional centre to the
national centre. The national level has nowhere higher to go.
"""
from services.referral.directory.facts import regional_centre_code
from services.referral.directory.model import DirectoryIndex, Level, Unit, UnitKind, UnitStatus

NATIONAL_CENTRE = "hotline-national-centre"


def next_up(unit: Unit, province_code: str, directory: DirectoryIndex) -> Unit | None:
    """The unit one level up for a case in `province_code`, or None at the top."""
    candidates: list[str | None] = []
    if unit.level is Level.commune:
        candidates = [unit.parent_code, *(u.code for u in directory.units_of_kind(
            UnitKind.police_province, Level.province, province_code))]
    elif unit.level is Level.province:
        region = directory.region_of(province_code)
        candidates = [regional_centre_code(region) if region else None, NATIONAL_CENTRE]
    elif unit.level is Level.region:
        candidates = [NATIONAL_CENTRE]
    for code in candidates:
        target = directory.by_code.get(code) if code else None
        if target is not None and target.code != unit.code and target.status is UnitStatus.active:
            return target
    return None


def ladder(unit: Unit, province_code: str, directory: DirectoryIndex) -> list[Unit]:
    """Every unit above `unit`, nearest first (the escalation skips those the case already reaches)."""
    out, seen = [], {unit.code}
    while (unit := next_up(unit, province_code, directory)) is not None and unit.code not in seen:
        out.append(unit)
        seen.add(unit.code)
    return out
