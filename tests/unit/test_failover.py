"""Provider failover: weighted priority tiers, health that shifts traffic away and drifts back, circuits.
Time is a number the tests pass in; randomness is a seeded Random."""
import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify.delivery.failover import (
    Circuit,
    HealthPolicy,
    ProviderPool,
    ProviderSpec,
    provider_failed,
)
from services.notify.delivery.outcome import SendOutcome, Verdict

POLICY = HealthPolicy(decrease=0.5, recovery=0.1, min_health=0.05, failure_threshold=5, cooldown_s=30,
                      max_cooldown_s=240)
N = 20_000


def pool(*specs, seed=1, policy=POLICY):
    return ProviderPool([ProviderSpec(*s) for s in specs], policy, random.Random(seed))


def shares(p, now=0.0, n=N, exclude=()):
    counts = Counter(p.choose(now, exclude) for _ in range(n))
    return {name: c / n for name, c in counts.items()}


def state(p, name, now=0.0):
    return next(s for s in p.snapshot(now) if s.name == name)


def fail(p, name, times, now=0.0):
    for _ in range(times):
        p.record(name, False, now)


def succeed(p, name, times, now=0.0):
    for _ in range(times):
        p.record(name, True, now)


# ---- weights and tiers -----------------------------------------------------------------------------

def test_weights_are_respected_within_the_best_tier():
    p = pool(("a", 1, 3), ("b", 1, 1), ("backup", 2, 100))
    got = shares(p)
    assert set(got) == {"a", "b"}  # the lower tier gets nothing while the best one is up
    assert got["a"] == pytest.approx(0.75, abs=0.02) and got["b"] == pytest.approx(0.25, abs=0.02)


def test_the_same_seed_replays_the_same_choices():
    a = [pool(("a", 1, 1), ("b", 1, 2), seed=7).choose(0) for _ in range(50)]
    b = [pool(("a", 1, 1), ("b", 1, 2), seed=7).choose(0) for _ in range(50)]
    assert a == b


def test_excluded_providers_are_skipped_and_all_excluded_gives_none():
    p = pool(("a", 1, 1), ("b", 1, 1), ("c", 2, 1))
    assert set(shares(p, exclude={"a"}, n=200)) == {"b"}
    assert set(shares(p, exclude={"a", "b"}, n=200)) == {"c"}  # a retry after the whole tier failed
    assert p.choose(0, exclude={"a", "b", "c"}) is None
    assert pool().choose(0) is None


# ---- shifting away and drifting back ---------------------------------------------------------------

def test_failures_shift_traffic_away_from_a_provider():
    p = pool(("a", 1, 1), ("b", 1, 1))
    fail(p, "a", 2)  # below the circuit threshold: still chosen, but less
    assert state(p, "a").health == pytest.approx(0.25) and state(p, "a").circuit is Circuit.closed
    assert shares(p)["a"] == pytest.approx(0.25 / 1.25, abs=0.02)


def test_successes_drift_back_gradually_not_in_one_jump():
    p = pool(("a", 1, 1), ("b", 1, 1))
    fail(p, "a", 4)
    healths = [state(p, "a").health]
    for _ in range(12):
        succeed(p, "a", 1)
        healths.append(state(p, "a").health)
    assert healths[0] == pytest.approx(0.0625)
    assert healths[1] == pytest.approx(0.1625)  # one success: a tenth back, not all of it
    assert all(x < y for x, y in zip(healths[:10], healths[1:10]))  # rising step by step
    assert healths[-1] == 1.0  # and capped at full health
    assert shares(p)["a"] == pytest.approx(0.5, abs=0.02)


def test_a_success_resets_the_run_of_failures():
    p = pool(("a", 1, 1), ("b", 2, 1))
    for _ in range(10):  # alternating: never five in a row, so the circuit stays closed
        fail(p, "a", 4)
        succeed(p, "a", 1)
    assert state(p, "a").circuit is Circuit.closed and state(p, "a").consecutive_failures == 0


def test_health_never_falls_below_the_floor():
    p = pool(("a", 1, 1))
    fail(p, "a", 50)
    assert state(p, "a").health == POLICY.min_health


# ---- circuit and tier fallback ---------------------------------------------------------------------

def test_consecutive_failures_open_the_circuit_and_the_next_tier_takes_over():
    p = pool(("primary", 1, 1), ("backup", 2, 1))
    fail(p, "primary", 4, now=100)
    assert state(p, "primary", 100).circuit is Circuit.closed and p.choose(100) == "primary"
    fail(p, "primary", 1, now=100)
    s = state(p, "primary", 100)
    assert s.circuit is Circuit.open and s.available_at == 130
    assert set(shares(p, now=100, n=200)) == {"backup"}
    assert set(shares(p, now=129.9, n=200)) == {"backup"}


def test_a_tier_falls_through_only_when_all_of_it_is_open():
    p = pool(("a", 1, 1), ("b", 1, 1), ("c", 2, 1))
    fail(p, "a", 5)
    assert set(shares(p, n=200)) == {"b"}
    fail(p, "b", 5)
    assert set(shares(p, n=200)) == {"c"}


def test_after_the_cool_down_one_trial_then_closed_on_success():
    p = pool(("primary", 1, 1), ("backup", 2, 1))
    fail(p, "primary", 5, now=0)
    assert state(p, "primary", 30).circuit is Circuit.half_open
    assert p.choose(30) == "primary"  # the trial
    assert p.choose(30) == "backup" and p.choose(31) == "backup"  # one trial at a time
    p.record("primary", True, 32)
    s = state(p, "primary", 32)
    assert s.circuit is Circuit.closed and s.available_at is None
    assert s.health == pytest.approx(POLICY.min_health + POLICY.recovery)  # back, but not yet fully trusted
    assert p.choose(32) == "primary"


def test_a_failed_trial_reopens_for_twice_as_long_up_to_the_cap():
    p = pool(("primary", 1, 1), ("backup", 2, 1))
    fail(p, "primary", 5, now=0)
    now, expected = 30.0, [60, 120, 240, 240]
    for cooldown in expected:
        assert p.choose(now) == "primary"
        p.record("primary", False, now)
        s = state(p, "primary", now)
        assert s.circuit is Circuit.open and s.available_at == now + cooldown
        now += cooldown
    assert p.choose(now) == "primary"
    p.record("primary", True, now)
    fail(p, "primary", 5, now=now)  # a later outage starts again from the base cool-down
    assert state(p, "primary", now).available_at == now + 30


def test_a_trial_whose_result_never_comes_is_retried_after_a_cool_down():
    p = pool(("primary", 1, 1), ("backup", 2, 1))
    fail(p, "primary", 5, now=0)
    assert p.choose(30) == "primary"
    assert p.choose(59) == "backup"
    assert p.choose(60) == "primary"


def test_late_failures_do_not_extend_an_open_circuit():
    p = pool(("a", 1, 1), ("b", 2, 1))
    fail(p, "a", 5, now=0)
    fail(p, "a", 3, now=10)  # sends that were in flight when it opened
    assert state(p, "a", 10).available_at == 30


def test_when_everything_is_open_the_first_to_recover_is_chosen():
    p = pool(("a", 1, 1), ("b", 1, 1), ("c", 2, 1))
    fail(p, "a", 5, now=10)  # open until 40
    fail(p, "b", 5, now=0)  # open until 30
    fail(p, "c", 5, now=5)  # open until 35
    assert p.choose(20) == "b"
    assert p.choose(20, exclude={"b"}) == "c"
    assert p.choose(20, exclude={"a", "b", "c"}) is None


def test_a_trial_in_flight_counts_as_recovering_at_its_deadline():
    p = pool(("a", 1, 1), ("b", 2, 1))
    fail(p, "a", 5, now=0)  # a open until 30
    assert p.choose(30) == "a"  # trial until 60
    fail(p, "b", 5, now=40)  # b open until 70
    assert p.choose(45) == "a"  # its trial frees first


def test_snapshot_lists_every_provider_for_ops():
    p = pool(("a", 1, 2), ("b", 2, 1))
    fail(p, "b", 5, now=0)
    assert [(s.name, s.priority, s.weight, s.health, s.circuit, s.available_at) for s in p.snapshot(1)] == [
        ("a", 1, 2, 1.0, Circuit.closed, None),
        ("b", 2, 1, pytest.approx(0.05), Circuit.open, 30),
    ]


# ---- what counts as a failure, and configuration ---------------------------------------------------

@pytest.mark.parametrize("outcome, failed", [
    (SendOutcome(Verdict.retry, "TimeoutError"), True),  # ours or the provider's trouble
    (SendOutcome(Verdict.retry, "503"), True),
    (SendOutcome(Verdict.retry, "452", exhausts_to="temporary-failure"), False),  # the recipient's
    (SendOutcome(Verdict.permanent, "550"), False),  # a bad recipient: the provider answered
    (SendOutcome(Verdict.delivered, "250"), False),
    (SendOutcome(Verdict.accepted, "0"), False),
])
def test_only_provider_trouble_counts_against_a_provider(outcome, failed):
    assert provider_failed(outcome) is failed


@pytest.mark.parametrize("specs", [
    [("a", 1, 0)], [("a", 1, -1)], [("a", 1, float("nan"))], [("a", 1, float("inf"))],
    [("", 1, 1)], [("a", 1, 1), ("a", 2, 1)],
])
def test_bad_provider_lists_are_refused(specs):
    with pytest.raises(ValueError):
        pool(*specs)


@pytest.mark.parametrize("kwargs", [
    {"decrease": 1}, {"decrease": 0}, {"min_health": 0}, {"min_health": 1.5}, {"recovery": 0},
    {"failure_threshold": 0}, {"cooldown_s": 0}, {"cooldown_s": 60, "max_cooldown_s": 30},
])
def test_bad_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        HealthPolicy(**kwargs)


def test_recording_an_unknown_provider_is_an_error():
    with pytest.raises(KeyError):
        pool(("a", 1, 1)).record("z", True, 0)


# ---- properties ------------------------------------------------------------------------------------

NAMES = ["a", "b", "c", "d"]
events = st.lists(st.tuples(st.sampled_from(NAMES), st.booleans(), st.floats(0, 100)), max_size=200)
policies = st.builds(
    HealthPolicy,
    decrease=st.floats(0.01, 0.99), recovery=st.floats(0.001, 2), min_health=st.floats(0.001, 1),
    failure_threshold=st.integers(1, 10), cooldown_s=st.floats(0.1, 50), max_cooldown_s=st.just(100.0),
)


@given(events, policies)
def test_health_stays_within_bounds_under_any_records(evs, policy):
    p = pool(("a", 1, 1), ("b", 1, 2), ("c", 2, 1), ("d", 3, 0.5), policy=policy)
    now = 0.0
    for name, ok, dt in evs:
        now += dt
        p.choose(now)
        p.record(name, ok, now)
        for s in p.snapshot(now):
            assert policy.min_health <= s.health <= 1.0
            if s.circuit is Circuit.closed:
                assert s.available_at is None
            if s.circuit is Circuit.open:
                assert s.available_at > now


@given(events, st.sets(st.sampled_from(NAMES)), st.integers(0, 2**32))
def test_choose_always_names_a_provider_not_excluded(evs, exclude, seed):
    p = pool(("a", 1, 1), ("b", 1, 2), ("c", 2, 1), ("d", 3, 0.5), seed=seed)
    now = 0.0
    for name, ok, dt in evs:
        now += dt
        p.record(name, ok, now)
        chosen = p.choose(now, exclude)
        assert chosen is None if exclude == set(NAMES) else chosen in set(NAMES) - exclude


@given(events)
def test_an_open_provider_is_never_chosen_while_another_is_available(evs):
    p = pool(("a", 1, 1), ("b", 1, 1), ("c", 2, 1), ("d", 2, 1))
    now = 0.0
    for name, ok, dt in evs:
        now += dt
        p.record(name, ok, now)
        before = {s.name: s for s in p.snapshot(now)}
        chosen = p.choose(now)
        usable = [s for s in before.values() if s.available_at is None]
        if usable:
            best = min(s.priority for s in usable)
            assert before[chosen].available_at is None and before[chosen].priority == best


def test_a_flaky_provider_loses_its_share_and_wins_it_back_when_it_recovers():
    """The dispatcher's loop: choose, send, record, a send a second. `a` fails half its sends for a while."""
    p = pool(("a", 1, 1), ("b", 1, 1), seed=3)
    flaky = random.Random(4)
    clock = iter(range(10**6))

    def run(n, a_fails):
        counts = Counter()
        for _ in range(n):
            now = next(clock)
            name = p.choose(now)
            counts[name] += 1
            p.record(name, not (name == "a" and a_fails and flaky.random() < 0.5), now)
        return counts["a"] / n

    assert run(2000, a_fails=False) == pytest.approx(0.5, abs=0.05)
    assert run(2000, a_fails=True) < 0.25  # flaky: mostly elsewhere
    assert 0.4 < run(2000, a_fails=False) <= 0.6  # recovered: back to its weight
