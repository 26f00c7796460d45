"""Loads the directory data file into the database; safe to run again (upsert by code)."""
import asyncio
import csv
import uuid

from sqlalchemy.dialects.postgresql import insert

from runtime.db import create_engine
from services.referral.directory.generate import DATA
from services.referral.models import agency_units
from services.referral.settings import ReferralSettings


def load_rows() -> list[dict]:
    with DATA.open(encoding="utf-8") as fh:
        return [
            {**row, "id": uuid.UUID(row["id"]), "province_code": row["province_code"] or None, "sms": row["sms"] or None}
            for row in csv.DictReader(fh)
        ]


async def seed(database_url: str) -> int:
    rows = load_rows()
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            stmt = insert(agency_units).values(rows)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[agency_units.c.code],
                    set_={c: stmt.excluded[c] for c in ("name", "kind", "province_code", "email", "sms", "source")},
                )
            )
    finally:
        await engine.dispose()
    return len(rows)


def seed_command(settings: ReferralSettings) -> None:
    print(f"referral: directory seeded with {asyncio.run(seed(settings.database_url))} units")
