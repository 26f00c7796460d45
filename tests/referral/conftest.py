"""Fixtures for tests that drive referral's handlers and scanner themselves: a database of the test
module's own (see own_database.py), with no service consuming or scanning it."""
import pytest

from runtime.db import create_engine
from services.referral.directory.repository import DirectoryCache
from services.referral.directory.seed import seed
from services.referral.matching.loader import RuleBook
from services.referral.referrals.handlers import Referrer
from services.referral.settings import ReferralSettings
from tests.support import own_database


@pytest.fixture(scope="module")
async def db(stack):
    url = await own_database(stack, "referral")
    await seed(url)
    engine = create_engine(url, pool_size=4)
    yield engine, ReferralSettings(database_url=url, kafka_bootstrap_servers=stack.bootstrap)
    await engine.dispose()


@pytest.fixture(scope="module")
def referrer(db):
    return Referrer(db[1], RuleBook(), DirectoryCache())


