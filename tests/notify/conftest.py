"""A notify database of the test module's own: no notify service consumes or dispatches from it, so a
test drives the handlers and the dispatcher itself."""
import os

import pytest

from runtime.crypto import new_key
from runtime.db import create_engine
from tests.support import own_database


# NotifySettings needs a key ring (webhook secrets are encrypted at rest); the tests build settings in-process.
os.environ.setdefault("PII_ENCRYPTION_KEYS", new_key())


@pytest.fixture(scope="module")
async def db(stack):
    url = await own_database(stack, "notify")
    engine = create_engine(url, pool_size=4)
    yield engine, url
    await engine.dispose()
