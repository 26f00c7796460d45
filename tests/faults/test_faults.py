"""Issue 8, "Faults: nothing lost, nothing doubled". Reports stream in at a fixed rate for a bounded time;
one fault is injected at a random moment (seeded: FAULTS_SEED is in the summary line); once the platform has
settled every effect is checked against the services' and the sinks' own records (truth.py). Each test has
two provinces of its own, so its truth is exact on the shared fault stack.

    .venv/bin/python -m pytest -q --long tests/faults                      # make test-long runs them too
    FAULTS_RATE=20 FAULTS_SECONDS=20 FAULTS_SEED=1234 ... --basetemp=/tmp/faults   # heavier; keep the logs
"""
import os
import random
import signal
import time
import uuid

import httpx
import pytest

from devstack.procs import run_sync
from tests.faults.load import LoadDriver, reports_for
from tests.faults.truth import Truth, dlq_ends, settle_and_check

pytestmark = pytest.mark.long

RATE = float(os.environ.get("FAULTS_RATE", "15"))  # reports a second
SECONDS = float(os.environ.get("FAULTS_SECONDS", "8"))  # of load
SEED = int(os.environ.get("FAULTS_SEED", str(random.SystemRandom().randrange(10_000))))
CONSUMERS = ("intake", "referral", "notify", "reporting")  # each consumes events, each runs a relay or loops
PROVINCES = {  # two per fault, none shared: one inland, one on a land border (its Border Guard is told too)
    "kill-intake": ("19", "04"), "kill-referral": ("24", "08"), "kill-notify": ("25", "11"),
    "kill-reporting": ("31", "14"), "broker-frozen": ("33", "15"), "postgres-restart": ("37", "20"),
    "sms-half-failing": ("56", "22"), "replicas": ("79", "38"),
}


class Run:
    """One fault's load and check."""

    def __init__(self, stack, fault: str, *, rate: float = RATE, seconds: float = SECONDS):
        self.stack, self.fault = stack, fault
        self.provinces = PROVINCES[fault.split(" ")[0]]
        self.seed = SEED + sum(map(ord, fault))
        self.rng = random.Random(self.seed)
        self.dlq_from = run_sync(dlq_ends(stack.bootstrap))
        self.reports = reports_for(f"{fault.split(' ')[0]}-{uuid.uuid4().hex[:6]}", self.provinces,
                                   int(rate * seconds), self.seed)
        operator = {"Authorization": f"Bearer {stack.token('operator', sub='fault-operator')}"}
        self.urls = [stack.url("intake")]
        self.driver = LoadDriver(self.urls, operator, self.reports, rate)
        self.truth = Truth(fault=fault, notes=[f"FAULTS_SEED={SEED}"])  # the moments and the mix, again

    def start(self) -> "Run":
        self.driver.start()
        return self

    def at_random_moment(self, low: float = 0.25, high: float = 0.6) -> float:
        """Sleep until a random moment of the load (a share of its length); the seconds since it began."""
        moment = self.rng.uniform(low, high) * self.driver.duration_s
        time.sleep(max(0.0, moment - self.driver.elapsed()))
        return self.driver.elapsed()

    def note(self, words: str) -> None:
        self.truth.notes.append(words)

    def finish(self, say) -> Truth:
        self.driver.join(timeout=300)
        truth = run_sync(settle_and_check(self.stack, self.truth, self.reports, self.provinces, self.dlq_from))
        say(truth.line())
        logs = self.stack.log_dir
        assert truth.ok, f"{len(truth.problems)} problems (logs in {logs}):\n" + "\n".join(truth.problems[:40])
        return truth


@pytest.mark.parametrize("service", CONSUMERS)
def test_kill_9_a_service_under_load_then_restart_it(fault_stack, say, service):
    run = Run(fault_stack, f"kill-{service} (kill -9, restart)").start()
    at = run.at_random_moment()
    fault_stack.services.kill(service)
    down = time.monotonic()
    fault_stack.services.start(service, ready_timeout=180)
    run.note(f"killed at {at:.1f}s, ready again {time.monotonic() - down:.1f}s later")
    run.finish(say)


def test_broker_frozen_for_10s_under_load(fault_stack, say):
    broker = fault_stack.infra.broker
    if broker is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS points at an external broker; this test freezes the local one")
    run = Run(fault_stack, "broker-frozen (SIGSTOP 10 s)").start()
    at = run.at_random_moment(0.1, 0.3)
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        time.sleep(10)
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    run.note(f"frozen at {at:.1f}s for 10 s")
    run.finish(say)


def test_postgres_restarted_under_load(fault_stack, say):
    postgres = fault_stack.infra.postgres
    if postgres is None:
        pytest.skip("DATABASE_URL points at an external PostgreSQL; this test restarts the local one")
    run = Run(fault_stack, "postgres-restart (fast shutdown, 2 s down)").start()
    at = run.at_random_moment()
    began = time.monotonic()
    postgres.restart(down_s=2.0)
    run.note(f"stopped at {at:.1f}s, accepting connections again {time.monotonic() - began:.1f}s later")
    run.finish(say)


def test_sms_gateway_fails_half_the_calls_for_a_while(fault_stack, say):
    """Half of all sends, on both of the gateway's APIs, refused with a 503 from the start of the load until
    10 s after its end: most alerts go out after the reports are in, and they must meet the fault."""
    control = f"{fault_stack.sms_url}/control"
    run = Run(fault_stack, "sms-half-failing (50% 503)")
    with httpx.Client(timeout=10) as http:
        before = http.get(control).json()["refused_by_ratio"]
        assert http.post(control, json={"fail_ratio": 0.5, "seed": run.seed}).status_code == 200
        began = time.monotonic()
        try:
            run.start()
            time.sleep(run.driver.duration_s + 10)
        finally:
            assert http.post(control, json={"fail_ratio": 0.0}).status_code == 200
        refused = http.get(control).json()["refused_by_ratio"] - before
    run.note(f"for {time.monotonic() - began:.0f}s the gateway refused {refused} sends")
    assert refused > 0, "the gateway refused nothing: the fault was not injected"
    run.finish(say)


def test_two_replicas_of_each_service_one_killed_under_load(fault_stack, say):
    services = fault_stack.services
    replicas = [services.start_replica(name, wait=False) for name in CONSUMERS]
    try:
        for replica in replicas:
            services.wait_ready(replica, 180)
        run = Run(fault_stack, "replicas (2 of each, the first of each killed)")
        run.urls.append(services.url_of("intake#2"))  # a load balancer in front of both intakes
        run.start()
        kills = []
        for i, name in enumerate(run.rng.sample(CONSUMERS, len(CONSUMERS))):
            at = run.at_random_moment(0.15 + 0.15 * i, 0.25 + 0.15 * i)
            services.kill(name)  # the first replica: it leads the relay and holds partitions since the start
            kills.append(f"{name} at {at:.1f}s")
        run.note("killed " + ", ".join(kills))
        run.driver.join(timeout=300)
        for name in CONSUMERS:  # the killed pods come back, as Kubernetes would replace them
            services.start(name, wait=False)
        for name in CONSUMERS:
            services.wait_ready(name, 180)
        run.finish(say)
    finally:
        for replica in replicas:
            services.supervisor.stop(replica, 30)
