"""Province and commune codes of the 2025 two-tier map, from the `vietnam-provinces` package."""
from functools import cache

from vietnam_provinces import Province, Ward


@cache
def provinces() -> dict[str, str]:
    """Two-digit province code → official name."""
    return {f"{int(p.code):02d}": p.name for p in Province.iter_all()}


@cache
def communes() -> dict[str, tuple[str, str]]:
    """Five-digit commune/ward code → (name, province code)."""
    return {f"{int(w.code):05d}": (w.name, f"{int(w.province_code):02d}") for w in Ward.iter_all()}


def province_name(code: str) -> str | None:
    return provinces().get(code)


def check_province(code: str | None) -> str | None:
    """For validators: the code, or a ValueError naming it if the 2025 map has no such province."""
    if code is not None and code not in provinces():
        raise ValueError(f"unknown province code {code!r} on the 2025 map")
    return code


def check_commune(code: str | None, province: str | None) -> str | None:
    """For validators: the code, or a ValueError if unknown or not in `province` (when given)."""
    if code is None:
        return None
    commune = communes().get(code)
    if commune is None:
        raise ValueError(f"unknown commune code {code!r} on the 2025 map")
    if province is not None and commune[1] != province:
        raise ValueError(f"commune {code!r} is not in province {province!r}")
    return code
