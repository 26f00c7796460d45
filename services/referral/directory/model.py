"""The agency directory as the domain sees it, after Open Referral HSDS v3: organisations' units,
where they serve, what they offer, how to reach them and when. Nothing here knows the database."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from uuid import UUID

from schemas.events.referrals import ContactChannel


class UnitKind(StrEnum):
    police_commune = "police_commune"
    police_province = "police_province"
    police_national = "police_national"  # the Ministry of Public Security's anti-trafficking department
    border_guard_province = "border_guard_province"  # provincial Border Guard command
    border_post = "border_post"
    coast_guard_region = "coast_guard_region"
    peoples_committee = "peoples_committee"  # commune People's Committee
    health_department = "health_department"  # provincial Department of Health (social protection since 2025)
    social_protection_centre = "social_protection_centre"
    child_protection_centre = "child_protection_centre"
    hospital = "hospital"
    psychological_support = "psychological_support"
    legal_aid_centre = "legal_aid_centre"
    womens_union_shelter = "womens_union_shelter"
    regional_centre = "regional_centre"  # the hotline's regional operation centres (Da Nang, An Giang)
    national_centre = "national_centre"  # the hotline's national centre (Hanoi)
    consular_department = "consular_department"  # Ministry of Foreign Affairs
    counterpart = "counterpart"  # focal point in China, Laos or Cambodia


class Level(StrEnum):
    """How far a unit's service area reaches; escalation climbs these in order."""

    commune = "commune"
    province = "province"
    region = "region"
    national = "national"
    international = "international"


LEVEL_ORDER = (Level.commune, Level.province, Level.region, Level.national, Level.international)


class Service(StrEnum):
    """The directory's service taxonomy. The support services carry the names of case needs."""

    law_enforcement = "law_enforcement"
    border_control = "border_control"
    maritime = "maritime"
    reception = "reception"  # receiving and protecting the person locally (Law 53/2024)
    medical = "medical"
    psychological = "psychological"
    social = "social"
    shelter = "shelter"
    legal_aid = "legal_aid"
    documents = "documents"
    child_protection = "child_protection"
    repatriation = "repatriation"
    consular = "consular"
    coordination = "coordination"


class UnitStatus(StrEnum):
    active = "active"
    inactive = "inactive"
    temporarily_closed = "temporarily_closed"


Channel = ContactChannel  # how a unit is alerted: one vocabulary with the events that carry it


@dataclass(frozen=True)
class Contact:
    channel: Channel
    address: str  # email address, or E.164 number for SMS
    preference: int = 1  # 1 first
    duty_24_7: bool = False  # answered day and night


@dataclass(frozen=True)
class OpeningHours:
    weekday: int  # 0 Monday … 6 Sunday, local time (Asia/Ho_Chi_Minh)
    opens: time
    closes: time


@dataclass(frozen=True)
class Unit:
    id: UUID
    code: str  # stable, human-readable: "police-commune-00070"
    name: str
    kind: UnitKind
    level: Level
    parent_code: str | None = None
    # Service area: a commune, a province, a hotline region, the nation, or a foreign country.
    province_code: str | None = None
    commune_code: str | None = None
    region: str | None = None  # "north", "central", "south" (schemas/data/regions.csv)
    country: str | None = None  # ISO 3166-1 alpha-2, for counterparts abroad
    services: frozenset[Service] = frozenset()
    languages: frozenset[str] = frozenset({"vi"})
    opening_hours: tuple[OpeningHours, ...] = ()  # empty: no published hours
    status: UnitStatus = UnitStatus.active
    last_verified: date | None = None
    contacts: tuple[Contact, ...] = ()
    source: str = ""

    @property
    def has_duty_contact(self) -> bool:
        return any(c.duty_24_7 for c in self.contacts)

    def open_at(self, local: datetime) -> bool:
        """Open now by its published hours, or reachable at any hour through a 24/7 duty contact."""
        if self.has_duty_contact:
            return True
        return any(h.weekday == local.weekday() and h.opens <= local.time() < h.closes for h in self.opening_hours)

    def contacts_in_order(self) -> list[Contact]:
        return sorted(self.contacts, key=lambda c: c.preference)


@dataclass
class DirectoryIndex:
    """All units in memory, indexed for matching: thousands of units fit easily, and matching a case
    then costs no database round trip."""

    units: list[Unit]
    by_code: dict[str, Unit] = field(init=False)
    by_id: dict[UUID, Unit] = field(init=False)
    # Geography the matcher asks about, from schemas/data/regions.csv, data/border_provinces.csv, coastal_provinces.csv
    # and coast_guard_regions.csv (read by whoever builds the index, never by the matcher).
    province_regions: dict[str, str] = field(default_factory=dict)  # province code → hotline region
    border_provinces: frozenset[str] = frozenset()
    border_countries: dict[str, tuple[str, ...]] = field(default_factory=dict)  # province → neighbours
    coastal_provinces: frozenset[str] = frozenset()
    # Province code → codes of units whose area spans provinces off the administrative map (Coast Guard regions).
    coverage: dict[str, frozenset[str]] = field(default_factory=dict)
    _by_kind: dict[tuple[UnitKind, Level, str], list[Unit]] = field(init=False, repr=False)
    _by_service: dict[tuple[Service, Level, str], list[Unit]] = field(init=False, repr=False)
    _children: dict[str, list[Unit]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_code = {u.code: u for u in self.units}
        self.by_id = {u.id: u for u in self.units}
        self._by_kind, self._by_service, self._children = {}, {}, {}
        for unit in self.units:
            if unit.parent_code:
                self._children.setdefault(unit.parent_code, []).append(unit)
        for unit in sorted(self.units, key=lambda u: u.code):  # code order: lookups are deterministic
            area = area_of(unit)
            if area is None:
                continue
            self._by_kind.setdefault((unit.kind, unit.level, area), []).append(unit)
            for service in unit.services:
                self._by_service.setdefault((service, unit.level, area), []).append(unit)

    def units_of_kind(self, kind: UnitKind, level: Level, area: str) -> list[Unit]:
        """Units of a kind whose service area is exactly `area` at `level`, any status, in code order.
        `area` is a commune, province, region or country code, or "" for the nation."""
        return list(self._by_kind.get((kind, level, area), ()))

    def units_offering(self, service: Service, level: Level, area: str) -> list[Unit]:
        """Units offering a service whose service area is exactly `area` at `level`, any status, in code order."""
        return list(self._by_service.get((service, level, area), ()))

    def units_covering(self, province_code: str) -> list[Unit]:
        """Units listed in `coverage` as serving a province (e.g. its Coast Guard region), in code order."""
        codes = sorted(self.coverage.get(province_code, ()))
        return [self.by_code[c] for c in codes if c in self.by_code]

    def units_under(self, codes: Iterable[str]) -> list[Unit]:
        """The units named, and every unit whose parent chain leads to one of them (a province police
        command and its commune police). Unknown codes name nothing."""
        found: dict[str, Unit] = {}
        todo = [self.by_code[c] for c in codes if c in self.by_code]
        while todo:
            unit = todo.pop()
            if unit.code not in found:  # a cycle in the data cannot loop forever
                found[unit.code] = unit
                todo.extend(self._children.get(unit.code, ()))
        return list(found.values())

    def region_of(self, province_code: str) -> str | None:
        """The hotline region of a province ("north", "central", "south"), None when not listed."""
        return self.province_regions.get(province_code)

    def is_border_province(self, province_code: str) -> bool:
        return province_code in self.border_provinces

    def is_coastal_province(self, province_code: str) -> bool:
        return province_code in self.coastal_provinces

    def border_provinces_with(self, country: str) -> list[str]:
        """The provinces with a land border with `country`, in code order."""
        return sorted(p for p, countries in self.border_countries.items() if country in countries)


def area_of(unit: Unit) -> str | None:
    """The code naming a unit's service area at its level; None when the unit lacks it."""
    match unit.level:
        case Level.commune:
            return unit.commune_code
        case Level.province:
            return unit.province_code
        case Level.region:
            return unit.region
        case Level.national:
            return ""
        case Level.international:
            return unit.country
