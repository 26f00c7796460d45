"""Loads the seed directory (data/agency_units.csv, made by generate.py) into the database; safe to
run again: units are upserted by code, and the directory's version moves on so running processes reload."""
import asyncio

from runtime.db import create_engine, session_factory
from services.referral.directory import codec, repository
from services.referral.directory.generate import DATA
from services.referral.settings import ReferralSettings


async def seed(database_url: str) -> int:
    units = codec.parse_csv(DATA.read_text(encoding="utf-8"))
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session, session.begin():
            return await repository.upsert(session, units)
    finally:
        await engine.dispose()


def seed_command(settings: ReferralSettings) -> None:
    print(f"referral: directory seeded with {asyncio.run(seed(settings.database_url))} units")
