"""A notify database of the test module's own: no notify service consumes or dispatches from it, so a
test drives the handlers and the dispatcher itself. The SMS gateway and the server of notify's routes are
shared by the session (tests/notify/pipeline.py)."""
import os

import pytest

from devstack.procs import Supervisor
from runtime.crypto import new_key
from runtime.db import create_engine
from tests.notify.pipeline import Routes, SmsGateway
from tests.support import own_database


# NotifySettings needs a key ring (webhook secrets are encrypted at rest); the tests build settings in-process.
os.environ.setdefault("PII_ENCRYPTION_KEYS", new_key())


@pytest.fixture(scope="module")
async def db(stack):
    url = await own_database(stack, "notify")
    engine = create_engine(url, pool_size=4)
    yield engine, url
    await engine.dispose()


@pytest.fixture(scope="session")
def supervisor(tmp_path_factory):
    """Processes the notify tests start (SMS gateways); all stopped at the end."""
    sup = Supervisor(log_dir=tmp_path_factory.mktemp("notify-procs"))
    yield sup
    sup.stop_all()


@pytest.fixture(scope="session")
async def sms_gateway(supervisor):
    """The local SMS gateway, one process for the session: tests keep apart by recipient number."""
    return await SmsGateway(supervisor, "sms").start()


@pytest.fixture(scope="session")
async def routes():
    r = await Routes().start()
    yield r
    await r.stop()
