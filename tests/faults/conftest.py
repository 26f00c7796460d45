"""The fault suites' own stack, apart from the session's `stack`: they kill, freeze and restart its
processes. One per package: it takes about a minute to start on a busy machine, and each fault test leaves
it whole again (restarted, resumed, replicas stopped) with its own provinces, so that truth stays exact."""
import pytest

from devstack.stack import Ports, Stack

# Recovery knobs, so a test waits seconds rather than minutes for what the platform does after a crash,
# and rate limits lifted, since all of a run's alerts go to the units of two provinces:
# - a send's lease above every provider's timeout (SMS 5 s, SMTP 5 s here), and reconcile every 2 s: a
#   message a killed notify held is settled ~15 s after the crash instead of ~75 s;
# - per recipient and per provider rate limits far above the load: they are not what is under test.
FAULT_ENV = {
    "NOTIFY_CLAIM_LEASE_S": "15",
    "SMTP_TIMEOUT_S": "5",
    "NOTIFY_RECONCILE_S": "2",
    "NOTIFY_RECIPIENT_RATE_PER_S": "100",
    "NOTIFY_RECIPIENT_BURST": "200",
    "NOTIFY_PROVIDER_RATE_PER_S": "500",
    "NOTIFY_PROVIDER_BURST": "500",
}

SUMMARY: list[str] = []  # one line per fault checked, printed at the end of the session


@pytest.fixture(scope="package")
def fault_stack(tmp_path_factory) -> Stack:
    root = tmp_path_factory.mktemp("fault-stack")
    s = Stack(data_dir=root / "pg", ports=Ports.free(), fast=True, log_dir=root / "logs", ready_timeout=180,
              extra_env=FAULT_ENV)
    s.start()  # from the main thread: the children die with the thread that spawned them
    yield s
    s.stop()


@pytest.fixture
def say(request):
    """Write a line to the terminal now, captured output or not, and keep it for the closing summary."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def write(line: str) -> None:
        SUMMARY.append(line)
        if reporter is not None:
            reporter.write_line("")
            reporter.write_line(line)

    return write


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section("faults: what each check compared")
        for line in SUMMARY:
            terminalreporter.write_line(line)
