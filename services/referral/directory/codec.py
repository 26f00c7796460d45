"""Reads and writes the agency directory as CSV or YAML, validating imports against the 2025 map.

CSV: one row per unit, columns FIELDS; list fields joined with `|`; contacts and opening hours in
the compact forms of textforms.py; empty cell = none. YAML: a list of mappings with the same keys,
lists as YAML lists, contacts as mappings {channel, address, preference, duty_24_7}, opening hours
as a list of compact strings (YAML 1.1 would read a bare 17:00 as a number).
A bad file raises one DirectoryImportError carrying every problem found, each with its row: the
CSV line where the record starts (header = row 1), or the 1-based YAML item (0 = the document).
"""
from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import yaml

from runtime.inputs import storable
from schemas.geography import communes, provinces
from services.referral.directory import textforms
from schemas.geography import REGIONS
from services.referral.directory.model import Contact, Level, Service, Unit, UnitKind, UnitStatus

FIELDS = ("id", "code", "name", "kind", "level", "parent_code", "province_code", "commune_code", "region",
          "country", "services", "languages", "opening_hours", "status", "last_verified", "contacts", "source")
REQUIRED = ("id", "code", "name", "kind", "level", "status")
LIST_SEP = "|"
CONTACT_KEYS = ("channel", "address", "preference", "duty_24_7")
MAX_CODE, MAX_TEXT = 64, 300  # the database's column widths
_CODE = re.compile(r"[a-z0-9][a-z0-9._-]*")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_LANGUAGE = re.compile(r"[a-z]{2,3}")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same safe semantics, faster


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    def ignore_aliases(self, data: object) -> bool:  # a shared date must not become &id001 / *id001
        return True


@dataclass(frozen=True)
class RowError:
    row: int
    field: str | None  # None: the row (or document) as a whole
    message: str

    def __str__(self) -> str:
        return f"row {self.row}" + (f", {self.field}" if self.field else "") + f": {self.message}"


class DirectoryImportError(ValueError):
    def __init__(self, errors: Iterable[RowError]):
        self.errors = list(errors)
        shown = "\n".join(map(str, self.errors[:20]))
        more = f"\n… and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(f"{len(self.errors)} problem(s) in the directory file:\n{shown}{more}")


# ---- writing -------------------------------------------------------------------------------------

def to_csv(units: Iterable[Unit]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for u in units:
        row = _plain(u)
        row["services"], row["languages"], row["opening_hours"] = (
            LIST_SEP.join(row[f]) for f in ("services", "languages", "opening_hours"))
        row["contacts"] = LIST_SEP.join(map(textforms.format_contact, u.contacts))
        row["last_verified"] = u.last_verified.isoformat() if u.last_verified else ""
        writer.writerow(["" if row[f] is None else row[f] for f in FIELDS])
    return out.getvalue()


def to_yaml(units: Iterable[Unit]) -> str:
    items = [{f: v for f, v in to_mapping(u).items() if v not in (None, "", [])} for u in units]  # absent = none
    return yaml.dump(items, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)


def to_mapping(u: Unit) -> dict[str, object]:
    """A unit in the YAML form, every field present (None or empty when it has none); parse_mappings reads it."""
    row = _plain(u)
    row["contacts"] = [{"channel": c.channel.value, "address": c.address, "preference": c.preference,
                        "duty_24_7": c.duty_24_7} for c in u.contacts]
    row["last_verified"] = u.last_verified
    return {f: row[f] for f in FIELDS}


def _plain(u: Unit) -> dict[str, object]:
    return {
        "id": str(u.id), "code": u.code, "name": u.name, "kind": u.kind.value, "level": u.level.value,
        "parent_code": u.parent_code, "province_code": u.province_code, "commune_code": u.commune_code,
        "region": u.region, "country": u.country, "services": sorted(s.value for s in u.services),
        "languages": sorted(u.languages), "opening_hours": textforms.format_hours(u.opening_hours),
        "status": u.status.value, "source": u.source,
    }


# ---- reading -------------------------------------------------------------------------------------

def parse_csv(text: str, known_codes: Iterable[str] = ()) -> list[Unit]:
    """Units from CSV text. `known_codes`: units already in the directory that parents may name."""
    return [u for _, u in parse_csv_numbered(text, known_codes)]


def parse_yaml(text: str, known_codes: Iterable[str] = ()) -> list[Unit]:
    return [u for _, u in parse_yaml_numbered(text, known_codes)]


def parse_csv_numbered(text: str, known_codes: Iterable[str] = ()) -> list[tuple[int, Unit]]:
    """parse_csv, each unit with its row, so a later check can name the row at fault."""
    records, errors = _csv_records(text)
    return _build(records, errors, frozenset(known_codes), csv_text=True)


def parse_yaml_numbered(text: str, known_codes: Iterable[str] = ()) -> list[tuple[int, Unit]]:
    try:
        doc = yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:  # constructors: bad dates
        raise DirectoryImportError([RowError(0, None, f"not valid YAML: {exc}")]) from None
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise DirectoryImportError([RowError(0, None, "the document must be a list of units")])
    return parse_mappings(doc, known_codes)


def parse_mappings(items: Iterable[object], known_codes: Iterable[str] = ()) -> list[tuple[int, Unit]]:
    """Units from mappings in the YAML form (JSON bodies have it too), numbered from 1."""
    records, errors = [], []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            errors.append(RowError(n, None, "each unit must be a mapping"))
            continue
        bad = [k for k in item if k not in FIELDS]
        errors += [RowError(n, str(k), "unknown field") for k in bad]
        records.append((n, {k: v for k, v in item.items() if k in FIELDS}))
    return _build(records, errors, frozenset(known_codes), csv_text=False)


def _csv_records(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[RowError]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise DirectoryImportError([RowError(1, None, f"unreadable CSV: {exc}")]) from None
    header = [h.strip() for h in header]
    if header:
        header[0] = header[0].removeprefix("\ufeff")  # spreadsheet exports start with a BOM
    errors = [RowError(1, f, "missing column") for f in REQUIRED if f not in header]
    if errors:  # rows cannot be read without them; don't repeat the problem on every row
        raise DirectoryImportError(errors)
    seen: set[str] = set()
    for h in header:
        if h not in FIELDS:
            errors.append(RowError(1, h or None, "unknown column"))
        elif h in seen:
            errors.append(RowError(1, h, "duplicate column"))
        seen.add(h)
    records, line = [], reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            errors.append(RowError(start, None, f"unreadable CSV: {exc}"))
            break
        if cells is None:
            break
        line = reader.line_num
        if not cells:  # blank line
            continue
        if len(cells) != len(header):
            errors.append(RowError(start, None, f"expected {len(header)} cells, found {len(cells)}"))
            continue
        records.append((start, {h: v for h, v in zip(header, cells) if h in FIELDS and v != ""}))
    return records, errors


def _build(records: list[tuple[int, dict[str, object]]], errors: list[RowError], known: frozenset[str],
           csv_text: bool) -> list[tuple[int, Unit]]:
    units: list[tuple[int, Unit]] = []
    rows_by_code: dict[str, list[int]] = {}
    rows_by_id: dict[uuid.UUID, list[int]] = {}
    parents: list[tuple[int, str, str | None]] = []
    for row, rec in records:
        fields = _RowReader(row, rec, csv_text)
        unit = fields.unit()
        errors += fields.errors
        if fields.code is not None:
            rows_by_code.setdefault(fields.code, []).append(row)
        if fields.id is not None:
            rows_by_id.setdefault(fields.id, []).append(row)
        if fields.parent is not None:
            parents.append((row, fields.parent, fields.code))
        if unit is not None:
            units.append((row, unit))
    errors += _duplicates("code", rows_by_code) + _duplicates("id", rows_by_id)
    for row, parent, code in parents:
        if parent == code:
            errors.append(RowError(row, "parent_code", "a unit cannot be its own parent"))
        elif parent not in rows_by_code and parent not in known:
            errors.append(RowError(row, "parent_code",
                                   f"unknown parent {parent!r}: not in the file nor in the directory"))
    if errors:
        raise DirectoryImportError(sorted(errors, key=lambda e: e.row))
    return units


def _duplicates(field: str, rows_by_value: Mapping[object, list[int]]) -> list[RowError]:
    out = []
    for value, rows in rows_by_value.items():
        if len(rows) > 1:
            listed = ", ".join(map(str, rows))
            out += [RowError(r, field, f"duplicate {field} {str(value)!r} (rows {listed})") for r in rows]
    return out


class _RowReader:
    """Turns one record into a Unit, noting every problem instead of stopping at the first."""

    def __init__(self, row: int, rec: Mapping[str, object], csv_text: bool):
        self.row, self.rec, self.csv_text = row, rec, csv_text
        self.errors: list[RowError] = []
        self.code: str | None = None
        self.id: uuid.UUID | None = None
        self.parent: str | None = None

    def unit(self) -> Unit | None:
        self.id = self._field("id", True, lambda v: uuid.UUID(_match(_UUID, v, "a UUID")))
        self.code = self._field("code", True, _code)
        name = self._field("name", True, _name)
        kind = self._field("kind", True, lambda v: _enum(UnitKind, v, "kind"))
        level = self._field("level", True, lambda v: _enum(Level, v, "level"))
        self.parent = self._field("parent_code", False, _code)
        province = self._field("province_code", False, _province)
        commune = self._field("commune_code", False, _commune)
        region = self._field("region", False, lambda v: _choice(v, REGIONS, "region"))
        country = self._field("country", False, lambda v: _match(_COUNTRY, v, "an ISO 3166-1 alpha-2 code"))
        services = self._list("services", lambda v: _enum(Service, v, "service"))
        languages = self._list("languages", lambda v: _match(_LANGUAGE, v, "a language code like vi"))
        hours = self._list("opening_hours", textforms.parse_hours)
        status = self._field("status", True, lambda v: _enum(UnitStatus, v, "status"))
        verified = self._date("last_verified")
        contacts = self._contacts()
        source = self._field("source", False, _text)
        if commune is not None:
            self._check_commune(commune, province)
        if self.errors:
            return None
        return Unit(
            id=self.id, code=self.code, name=name, kind=kind, level=level, parent_code=self.parent,
            province_code=province, commune_code=commune, region=region, country=country,
            services=frozenset(services), languages=frozenset(languages),
            opening_hours=tuple(h for entry in hours for h in entry), status=status, last_verified=verified,
            contacts=tuple(contacts), source=source or "",
        )

    def _fail(self, field: str, message: str) -> None:
        self.errors.append(RowError(self.row, field, message))

    def _field(self, field: str, required: bool, convert: Callable[[str], object]):
        value = self.rec.get(field)
        if value is None or value == "":
            if required:
                self._fail(field, "required")
            return None
        if not isinstance(value, str):
            self._fail(field, f"must be text, found {type(value).__name__} (quote it in YAML)")
            return None
        try:
            return convert(value)
        except ValueError as exc:
            self._fail(field, str(exc))
            return None

    def _items(self, field: str) -> list[object]:
        value = self.rec.get(field)
        if value is None or value == "":
            return []
        if self.csv_text:
            return value.split(LIST_SEP)
        if not isinstance(value, list):
            self._fail(field, f"must be a list, found {type(value).__name__}")
            return []
        return value

    def _list(self, field: str, convert: Callable[[str], object]) -> list:
        out = []
        for i, item in enumerate(self._items(field), start=1):
            if not isinstance(item, str) or item == "":
                self._fail(field, f"item {i} must be non-empty text")
                continue
            try:
                out.append(convert(item))
            except ValueError as exc:
                self._fail(field, f"item {i}: {exc}")
        return out

    def _contacts(self) -> list[Contact]:
        if self.csv_text:
            return self._list("contacts", textforms.parse_contact)
        out = []
        for i, item in enumerate(self._items("contacts"), start=1):
            try:
                out.append(_contact_mapping(item))
            except ValueError as exc:
                self._fail("contacts", f"item {i}: {exc}")
        return out

    def _date(self, field: str) -> date | None:
        value = self.rec.get(field)
        if isinstance(value, date) and not isinstance(value, datetime):  # YAML reads a bare date itself
            return value
        return self._field(field, False, _iso_date)

    def _check_commune(self, commune: str, province: str | None) -> None:
        actual = communes()[commune][1]
        if province is None:
            if "province_code" not in {e.field for e in self.errors}:
                self._fail("province_code", f"required with a commune (commune {commune} is in province {actual})")
        elif actual != province:
            self._fail("commune_code", f"commune {commune} is in province {actual}, not {province}")


def _contact_mapping(item: object) -> Contact:
    if not isinstance(item, dict):
        raise ValueError("must be a mapping with channel, address, preference, duty_24_7")
    unknown = [str(k) for k in item if k not in CONTACT_KEYS]
    if unknown:
        raise ValueError(f"unknown keys {', '.join(unknown)}")
    channel, address = item.get("channel"), item.get("address")
    if not isinstance(channel, str) or not isinstance(address, str):
        raise ValueError("channel and address must be text")
    channel = textforms.parse_channel(channel)
    textforms.check_address(channel, address)
    preference = textforms.check_preference(item.get("preference", 1))
    duty = item.get("duty_24_7", False)
    if not isinstance(duty, bool):
        raise ValueError(f"duty_24_7 must be true or false, not {duty!r}")
    return Contact(channel, address, preference, duty)


def _match(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{value!r} is not {what}")
    return value


def _code(value: str) -> str:
    if len(value) > MAX_CODE or not _CODE.fullmatch(value):
        raise ValueError(f"{value!r} is not a unit code (lower-case letters, digits, . _ -; at most {MAX_CODE})")
    return value


def _text(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise ValueError(f"longer than {MAX_TEXT} characters")
    if not storable(value):  # YAML's "\0" escape: the database's text cannot hold it
        raise ValueError("holds a NUL character or an unpaired surrogate")
    return value


def _name(value: str) -> str:
    if not value.strip():
        raise ValueError("required")
    return _text(value)


def _enum(enum: type, value: str, what: str):
    try:
        return enum(value)
    except ValueError:
        raise ValueError(f"unknown {what} {value!r}") from None


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r} (one of {', '.join(allowed)})")
    return value


def _province(value: str) -> str:
    if value not in provinces():
        raise ValueError(f"unknown province code {value!r}")
    return value


def _commune(value: str) -> str:
    if value not in communes():
        raise ValueError(f"unknown commune code {value!r}")
    return value


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(_match(_DATE, value, "a date YYYY-MM-DD"))
    except ValueError:
        raise ValueError(f"{value!r} is not a date YYYY-MM-DD") from None
