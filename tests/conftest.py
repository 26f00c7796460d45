"""One real stack per test session: embedded PostgreSQL, the Tansu broker, an SMTP sink and the four
services as processes. DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS point the session at existing ones.

Tests marked `long` (fault and abuse variants that do not fit `make test`'s 10 minutes) run only with
`--long` (`make test-long`)."""
import pytest

from devstack.stack import Ports, Stack


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", help="also run the tests marked long (make test-long)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long: run with --long (make test-long)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    root = tmp_path_factory.mktemp("stack")
    s = Stack(data_dir=root / "pg", ports=Ports.free(), fast=True, log_dir=root / "logs", ready_timeout=120)
    s.start()
    yield s
    s.stop()
