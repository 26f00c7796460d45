"""One real stack per test session: embedded PostgreSQL, the Tansu broker, an SMTP sink and the four
services as processes. DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS point the session at existing ones."""
import pytest

from devstack.stack import Ports, Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    root = tmp_path_factory.mktemp("stack")
    s = Stack(data_dir=root / "pg", ports=Ports.free(), fast=True, log_dir=root / "logs", ready_timeout=120)
    s.start()
    yield s
    s.stop()
