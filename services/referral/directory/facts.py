"""The geographic facts the directory is built on, read from the editable files in data/: land-border
provinces, coastal provinces, hotline regions and Coast Guard coverage (sources in each file's
`source` column). Every file is checked against the 2025 map on load: a typo fails loudly."""
from __future__ import annotations

import csv
from collections import Counter
from functools import cache
from pathlib import Path

from schemas.geography import REGIONS_FILE, provinces, read_regions, region_problems
from services.referral.directory.model import DirectoryIndex, Unit

DATA_DIR = Path(__file__).parent / "data"
COUNTRIES = ("CN", "LA", "KH")  # land neighbours: China, Laos, Cambodia
COUNTRY_NAMES = {"CN": "China", "LA": "Laos", "KH": "Cambodia"}
COAST_GUARD_REGIONS = (1, 2, 3, 4)  # regional commands, north to south
# The north has no separate regional centre: the national centre in Hanoi serves it.
REGIONAL_CENTRE = {"north": "hotline-national-centre", "central": "hotline-centre-central",
                   "south": "hotline-centre-south"}


class FactsError(ValueError):
    """A fact file does not agree with the 2025 map or with itself."""


def resolve_province(name: str) -> str:
    """Province code for a name as domain.md writes it: no "Tỉnh"/"Thành phố" prefix, accents exact;
    "Hồ Chí Minh City" is taken as "Hồ Chí Minh"."""
    bare = name.strip().removesuffix(" City")
    hits = [code for code, official in provinces().items() if _bare(official) == bare]
    if len(hits) != 1:
        raise FactsError(f"province name {name!r} does not resolve to one province of the 2025 map")
    return hits[0]


def coast_guard_unit_code(region: int) -> str:
    return f"coast-guard-region-{region}"


@cache
def regions() -> dict[str, str]:
    """Province code → hotline region; covers all 34 provinces exactly once."""
    rows = read_regions(REGIONS_FILE)
    _raise(_check_provinces("regions.csv", rows) + region_problems(rows))
    return {r["province_code"]: r["region"] for _, r in rows}


def region_of(province_code: str) -> str:
    return regions()[province_code]


def regional_centre_code(region: str) -> str:
    return REGIONAL_CENTRE[region]


@cache
def border_countries() -> dict[str, tuple[str, ...]]:
    """Land-border province code → neighbour countries (ISO alpha-2), in file order."""
    rows = _read("border_provinces.csv")
    problems = _check_provinces("border_provinces.csv", rows)
    problems += [f"border_provinces.csv line {n}: unknown country {r['country']!r}"
                 for n, r in rows if r["country"] not in COUNTRIES]
    pairs = Counter((r["province_code"], r["country"]) for _, r in rows)
    problems += [f"border_provinces.csv: {p} {c} listed twice" for (p, c), k in pairs.items() if k > 1]
    _raise(problems)
    out: dict[str, tuple[str, ...]] = {}
    for _, r in rows:
        out[r["province_code"]] = out.get(r["province_code"], ()) + (r["country"],)
    return out


def border_pairs() -> list[tuple[str, str]]:
    """Every (province code, country) land-border pair."""
    return [(p, c) for p, countries in border_countries().items() for c in countries]


@cache
def coastal_provinces() -> frozenset[str]:
    rows = _read("coastal_provinces.csv")
    problems = _check_provinces("coastal_provinces.csv", rows)
    counts = Counter(r["province_code"] for _, r in rows)
    problems += [f"coastal_provinces.csv: province {c} listed twice" for c, k in counts.items() if k > 1]
    _raise(problems)
    return frozenset(counts)


@cache
def coast_guard_coverage() -> dict[str, str]:
    """Coastal province code → code of the Coast Guard regional command covering it (each exactly one)."""
    rows = _read("coast_guard_regions.csv")
    problems = _check_provinces("coast_guard_regions.csv", rows)
    valid = {str(r) for r in COAST_GUARD_REGIONS}
    problems += [f"coast_guard_regions.csv line {n}: unknown region {r['coast_guard_region']!r}"
                 for n, r in rows if r["coast_guard_region"] not in valid]
    problems += [f"coast_guard_regions.csv: region {k} covers no province"
                 for k in sorted(valid - {r["coast_guard_region"] for _, r in rows})]
    counts = Counter(r["province_code"] for _, r in rows)
    problems += [f"coast_guard_regions.csv: province {c} covered {k} times" for c, k in counts.items() if k > 1]
    coastal = coastal_provinces()
    problems += [f"coast_guard_regions.csv: coastal province {c} not covered" for c in sorted(coastal - set(counts))]
    problems += [f"coast_guard_regions.csv: province {c} is not coastal" for c in sorted(set(counts) - coastal)]
    _raise(problems)
    return {r["province_code"]: coast_guard_unit_code(int(r["coast_guard_region"])) for _, r in rows}


def index_geography() -> dict[str, object]:
    """DirectoryIndex's geography fields (province_regions, border_provinces and their neighbours,
    coastal_provinces, coverage)."""
    borders = border_countries()
    return {
        "province_regions": dict(regions()),
        "border_provinces": frozenset(borders),
        "border_countries": borders,
        "coastal_provinces": coastal_provinces(),
        "coverage": {p: frozenset({code}) for p, code in coast_guard_coverage().items()},
    }


def directory_index(units: list[Unit]) -> DirectoryIndex:
    """The in-memory index of `units` with the geography of the fact files."""
    return DirectoryIndex(units, **index_geography())


def _bare(official: str) -> str:
    return official.removeprefix("Thành phố ").removeprefix("Tỉnh ")


def _read(name: str) -> list[tuple[int, dict[str, str]]]:
    """Rows with their line numbers (header is line 1)."""
    with (DATA_DIR / name).open(encoding="utf-8", newline="") as fh:
        return [(n, row) for n, row in enumerate(csv.DictReader(fh), start=2)]


def _check_provinces(file: str, rows: list[tuple[int, dict[str, str]]]) -> list[str]:
    """Each row's code must exist and agree with its human-readable name."""
    problems = []
    for n, row in rows:
        code, name = row.get("province_code") or "", row.get("province_name") or ""
        if not (row.get("source") or "").strip():
            problems.append(f"{file} line {n}: source missing")
        if code not in provinces():
            problems.append(f"{file} line {n}: unknown province code {code!r}")
            continue
        try:
            resolved = resolve_province(name)
        except FactsError as exc:
            problems.append(f"{file} line {n}: {exc}")
            continue
        if resolved != code:
            problems.append(f"{file} line {n}: {name!r} is province {resolved}, not {code}")
    return problems


def _raise(problems: list[str]) -> None:
    if problems:
        raise FactsError("directory fact files disagree with the 2025 map:\n" + "\n".join(problems))
