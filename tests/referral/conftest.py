"""Fixtures for tests that drive referral's handlers and scanner themselves: a database of the test
module's own (see own_database.py), with no service consuming or scanning it."""
import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from runtime import migrations
from runtime.db import asyncpg_dsn, create_engine
from services.referral.directory.repository import DirectoryCache
from services.referral.directory.seed import seed
from services.referral.matching.loader import RuleBook
from services.referral.referrals.handlers import Referrer
from services.referral.settings import ReferralSettings


@pytest.fixture(scope="module")
async def db(stack):
    name = f"referral_own_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    await asyncio.to_thread(migrations.upgrade, Path("services/referral/migrations"), url, "referral")
    await seed(url)
    engine = create_engine(url, pool_size=4)
    yield engine, ReferralSettings(database_url=url, kafka_bootstrap_servers=stack.bootstrap)
    await engine.dispose()


@pytest.fixture(scope="module")
def referrer(db):
    return Referrer(db[1], RuleBook(), DirectoryCache())


