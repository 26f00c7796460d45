"""Writes directory/data/agency_units.csv from the `vietnam-provinces` package.

The contacts are fictitious placeholders (the reserved `.example` domain): real duty contacts are
loaded by the directory administrators, never committed.
Run: python -m services.referral.directory.generate
"""
import csv
import uuid
from pathlib import Path

from schemas.geography import provinces

DATA = Path(__file__).parent / "data" / "agency_units.csv"
FIELDS = ["id", "code", "name", "kind", "province_code", "email", "sms", "source"]
NAMESPACE = uuid.UUID("8f0c9b1e-1111-4d6e-9a57-111111111111")  # stable ids across regenerations
SOURCE = "vietnam-provinces 2025.10.1 (34 provinces, 2025 map); contacts fictitious"


def rows() -> list[dict]:
    out = [
        {
            "code": "police-national-c02",
            "name": "Ministry of Public Security - Criminal Police Department (anti-trafficking)",
            "kind": "police_national",
            "province_code": "",
            "email": "antitrafficking.c02@agencies.hotline111.example",
        }
    ]
    for code, name in sorted(provinces().items()):
        out.append(
            {
                "code": f"police-province-{code}",
                "name": f"Provincial Police of {name}",
                "kind": "police_province",
                "province_code": code,
                "email": f"police.p{code}@agencies.hotline111.example",
            }
        )
    for row in out:
        row.update(id=str(uuid.uuid5(NAMESPACE, row["code"])), sms="", source=SOURCE)
    return out


def write(path: Path = DATA) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows())


if __name__ == "__main__":
    write()
