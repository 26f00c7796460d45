"""Checks of place codes against the 2025 map, shared by cases and contacts."""
from schemas.geography import communes, provinces


def check_province(code: str | None) -> str | None:
    if code is not None and code not in provinces():
        raise ValueError(f"unknown province code {code!r} on the 2025 map")
    return code


def check_commune(code: str | None, province: str | None) -> str | None:
    if code is None:
        return None
    commune = communes().get(code)
    if commune is None:
        raise ValueError(f"unknown commune code {code!r} on the 2025 map")
    if province is not None and commune[1] != province:
        raise ValueError(f"commune {code!r} is not in province {province!r}")
    return code
