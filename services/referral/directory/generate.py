"""Builds the seed agency directory and writes it to data/agency_units.csv (the codec's CSV form).

Every unit the 2025 reorganisation gives the hotline to refer to: the national and regional bodies,
six support units per province, Border Guard and Coast Guard, two units per commune, and the
counterparts abroad. Geography comes from `vietnam-provinces` and the fact files in data/
(facts.py). Ids are uuid5 over the unit code, so they are the same on every run.

Contacts are FICTITIOUS placeholders: emails on the reserved `.example` domain and SMS numbers
+8400000xxxxx, a range no real Vietnamese number uses. Real duty contacts are loaded by the
directory administrators, never committed.
Run: python -m services.referral.directory.generate
"""
from __future__ import annotations

import uuid
from datetime import date, time
from importlib.metadata import version
from pathlib import Path

from schemas.geography import communes, provinces
from services.referral.directory import codec
from services.referral.directory.facts import (  # noqa: F401  (re-exported)
    COAST_GUARD_REGIONS,
    COUNTRY_NAMES,
    REGIONAL_CENTRE,
    border_countries,
    coast_guard_coverage,
    coast_guard_unit_code,
    coastal_provinces,
    directory_index,
)
from services.referral.directory.model import Channel, Contact, Level, OpeningHours, Unit
from services.referral.directory.model import Service as S
from services.referral.directory.model import UnitKind as K

DATA = Path(__file__).parent / "data" / "agency_units.csv"
NAMESPACE = uuid.UUID("8f0c9b1e-1111-4d6e-9a57-111111111111")  # stable ids across regenerations
EMAIL_DOMAIN = "agencies.hotline111.example"  # RFC 2606 reserved: can never reach anyone
# + 5 digits, unique per unit with a duty line: 00001–49999 commune police (= commune code),
# 50000–89999 People's Committees (50000 + commune code), 900ss national and regional bodies,
# 9PPss province units (PP = province code, ss = slot below).
SMS_PREFIX = "+8400000"
COMMUNE_SMS_LIMIT = 40_000  # commune codes must stay below this for the layout above
LAST_VERIFIED = date(2026, 11, 1)
OFFICE_HOURS = tuple(OpeningHours(d, time(7, 30), time(17, 0)) for d in range(5))  # Mon–Fri, Asia/Ho_Chi_Minh
DOMAIN = "/work/shared/domain.md"
SOURCE = (f"{DOMAIN} (agencies after the 2025 reorganisation); vietnam-provinces {version('vietnam-provinces')}; "
          "contacts fictitious")
COUNTERPART_LANGUAGE = {"CN": "zh", "LA": "lo", "KH": "km"}
NATIONAL_SMS = {"police-national": 90_001, "hotline-national-centre": 90_002, "hotline-centre-central": 90_003,
                "hotline-centre-south": 90_004, **{coast_guard_unit_code(r): 90_010 + r for r in COAST_GUARD_REGIONS}}
PROVINCE_SMS = {"police-province": 1, "hospital": 2, "border-guard": 3, "social-protection": 4, "shelter": 5,
                "border-post-CN": 10, "border-post-LA": 11, "border-post-KH": 12}


def units() -> list[Unit]:
    """The whole seed directory, in a fixed order."""
    return [*_national(), *_regional(), *_coast_guard(), *_counterparts(), *_provincial(), *_communal()]


def write(path: Path = DATA) -> int:
    all_units = units()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(codec.to_csv(all_units), encoding="utf-8", newline="")
    return len(all_units)


def _unit(code: str, name: str, kind: K, level: Level, services: set[S], *, duty_sms: int | None = None,
          office: bool = False, note: str = "", **where) -> Unit:
    """duty_sms: the SMS suffix of a 24/7 duty line (SMS first, then email); office: Mon–Fri hours."""
    email = f"{code}@{EMAIL_DOMAIN}"
    if duty_sms is not None:
        contacts = (Contact(Channel.sms, f"{SMS_PREFIX}{duty_sms:05d}", 1, duty_24_7=True),
                    Contact(Channel.email, email, 2))
    else:
        contacts = (Contact(Channel.email, email, 1),)
    return Unit(
        id=uuid.uuid5(NAMESPACE, code), code=code, name=name, kind=kind, level=level, services=frozenset(services),
        opening_hours=OFFICE_HOURS if office else (), last_verified=LAST_VERIFIED, contacts=contacts,
        source=SOURCE + (f"; {note}" if note else ""), **where,
    )


def _national() -> list[Unit]:
    return [
        _unit("police-national", "Ministry of Public Security – Criminal Police Department (anti-trafficking)",
              K.police_national, Level.national, {S.law_enforcement, S.coordination},
              duty_sms=NATIONAL_SMS["police-national"]),
        # Service area is the nation; its seat (Hanoi) is in the name. The north has no centre of its own:
        # region="north" marks this one as it (facts.regional_centre_code("north") names it).
        _unit("hotline-national-centre", "Hotline 111 national centre, Hà Nội", K.national_centre, Level.national,
              {S.coordination}, duty_sms=NATIONAL_SMS["hotline-national-centre"], region="north",
              note="hotline regions (verify)"),
        _unit("mofa-consular", "Ministry of Foreign Affairs – Consular Department", K.consular_department,
              Level.national, {S.consular, S.repatriation, S.documents}, office=True,
              languages=frozenset({"vi", "en"})),
    ]


def _regional() -> list[Unit]:
    seats = {"central": "Đà Nẵng", "south": "An Giang"}
    return [
        _unit(REGIONAL_CENTRE[region], f"Hotline 111 regional operation centre, {seat}", K.regional_centre,
              Level.region, {S.coordination}, duty_sms=NATIONAL_SMS[REGIONAL_CENTRE[region]], region=region,
              parent_code=REGIONAL_CENTRE["north"], note="hotline regions (verify)")
        for region, seat in seats.items()
    ]


def _coast_guard() -> list[Unit]:
    # Coverage (province → command) is in facts.coast_guard_coverage() and DirectoryIndex.coverage, not on
    # the unit: commands 2 and 3 each span two hotline regions, so `region` stays None.
    return [
        _unit(code, f"Vietnam Coast Guard Region {r} Command", K.coast_guard_region, Level.region,
              {S.maritime, S.law_enforcement}, duty_sms=NATIONAL_SMS[code],
              note="coverage from data/coast_guard_regions.csv, a placeholder assignment (verify)")
        for r in COAST_GUARD_REGIONS
        for code in [coast_guard_unit_code(r)]
    ]


def _counterparts() -> list[Unit]:
    return [
        _unit(f"counterpart-{country.lower()}", f"Anti-trafficking counterpart focal point, {name}", K.counterpart,
              Level.international, {S.coordination, S.repatriation}, country=country,
              languages=frozenset({"en", COUNTERPART_LANGUAGE[country]}))
        for country, name in COUNTRY_NAMES.items()
    ]


def _provincial() -> list[Unit]:
    out = []
    borders, coastal = border_countries(), coastal_provinces()
    for p, pname in sorted(provinces().items()):
        def sms(slot: str, p: str = p) -> int:
            return 90_000 + int(p) * 100 + PROVINCE_SMS[slot]

        here = {"province_code": p}
        health = f"health-{p}"
        out += [
            _unit(f"police-province-{p}", f"Provincial Police of {pname}", K.police_province, Level.province,
                  {S.law_enforcement}, duty_sms=sms("police-province"), parent_code="police-national", **here),
            _unit(health, f"Department of Health of {pname}", K.health_department, Level.province,
                  {S.medical, S.social, S.documents}, office=True, **here),
            # Social protection moved under the provincial Department of Health in 2025.
            _unit(f"social-protection-{p}", f"Social Protection Centre of {pname}", K.social_protection_centre,
                  Level.province, {S.social, S.shelter, S.psychological, S.child_protection, S.repatriation},
                  # emergency admissions at any hour; the office for everything else
                  office=True, duty_sms=sms("social-protection"), parent_code=health, **here),
            _unit(f"legal-aid-{p}", f"State Legal Aid Centre of {pname}", K.legal_aid_centre, Level.province,
                  {S.legal_aid, S.documents}, office=True, **here),
            _unit(f"hospital-{p}", f"Provincial General Hospital of {pname}", K.hospital, Level.province, {S.medical},
                  duty_sms=sms("hospital"), parent_code=health, **here),
            _unit(f"womens-union-shelter-{p}", f"Women's Union Shelter of {pname}", K.womens_union_shelter,
                  Level.province, {S.shelter, S.psychological}, office=True, duty_sms=sms("shelter"), **here),
        ]
        if p in borders or p in coastal:
            why = "; ".join(w for w, yes in (("land-border list (verify)", p in borders),
                                             ("coastal list (verify)", p in coastal)) if yes)
            out.append(_unit(f"border-guard-{p}", f"Border Guard Command of {pname}", K.border_guard_province,
                             Level.province, {S.border_control, S.law_enforcement}, duty_sms=sms("border-guard"),
                             note=why, **here))
        for country in borders.get(p, ()):
            out.append(_unit(f"border-post-{p}-{country.lower()}",
                             f"Border Guard posts of {pname} on the {COUNTRY_NAMES[country]} border", K.border_post,
                             Level.province, {S.border_control, S.law_enforcement},
                             duty_sms=sms(f"border-post-{country}"), parent_code=f"border-guard-{p}",
                             note="land-border list (verify)", **here))
    return out


def _communal() -> list[Unit]:
    out = []
    pnames = provinces()
    for c, (cname, p) in sorted(communes().items()):
        if int(c) >= COMMUNE_SMS_LIMIT:
            raise ValueError(f"commune code {c} breaks the fictitious SMS layout: revise SMS_PREFIX's comment")
        where = {"province_code": p, "commune_code": c}
        out += [
            _unit(f"police-commune-{c}", f"Commune Police of {cname}, {pnames[p]}", K.police_commune, Level.commune,
                  {S.law_enforcement}, duty_sms=int(c), parent_code=f"police-province-{p}", **where),
            # Law 53/2024: Police, Border Guard and Coast Guard bring the person to this committee.
            _unit(f"peoples-committee-{c}", f"People's Committee of {cname}, {pnames[p]}", K.peoples_committee,
                  Level.commune, {S.reception, S.social}, duty_sms=50_000 + int(c), **where),
        ]
    return out


if __name__ == "__main__":
    print(f"wrote {write()} units to {DATA}")
