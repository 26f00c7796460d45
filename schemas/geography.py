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
