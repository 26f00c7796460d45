"""Province and commune codes of the 2025 two-tier map, from the `vietnam-provinces` package, and the
hotline's operating regions (data/regions.csv, shared by referral and reporting)."""
import csv
from functools import cache
from pathlib import Path

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


REGIONS_FILE = Path(__file__).parent / "data" / "regions.csv"
REGIONS = ("north", "central", "south")  # the hotline's operating regions, north to south


def read_regions(path: Path = REGIONS_FILE) -> list[tuple[int, dict[str, str]]]:
    """regions.csv's rows with their line numbers (header is line 1)."""
    with path.open(encoding="utf-8", newline="") as fh:
        return [(n, row) for n, row in enumerate(csv.DictReader(fh), start=2)]


def region_problems(rows: list[tuple[int, dict[str, str]]]) -> list[str]:
    """What is wrong with regions.csv's rows: every province of the 2025 map once, in a known region."""
    problems = [f"regions.csv line {n}: unknown region {r['region']!r}" for n, r in rows if r["region"] not in REGIONS]
    seen = [r["province_code"] for _, r in rows]
    problems += [f"regions.csv: province {c} listed {seen.count(c)} times" for c in sorted(set(seen)) if seen.count(c) > 1]
    problems += [f"regions.csv: province {c} missing" for c in sorted(set(provinces()) - set(seen))]
    return problems


@cache
def hotline_regions() -> dict[str, str]:
    """Province code → hotline region; a bad file fails loudly."""
    rows = read_regions()
    problems = [f"regions.csv line {n}: unknown province code {r['province_code']!r}"
                for n, r in rows if r["province_code"] not in provinces()] + region_problems(rows)
    if problems:
        raise ValueError("the hotline regions disagree with the 2025 map:\n" + "\n".join(problems))
    return {r["province_code"]: r["region"] for _, r in rows}
