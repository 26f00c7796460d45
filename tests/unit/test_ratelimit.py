"""Token buckets per provider and per recipient. Time is a number the tests pass in."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify.delivery.ratelimit import Rate, RateLimits, TokenBucket

# ---- one bucket ------------------------------------------------------------------------------------

def test_a_bucket_starts_full_then_refills_at_its_rate():
    b = TokenBucket(rate_per_s=2, burst=3)
    assert [b.try_take(10) for _ in range(4)] == [True, True, True, False]
    assert b.wait_time(10) == pytest.approx(0.5)
    assert not b.try_take(10.4)
    assert b.try_take(10.5)
    assert not b.try_take(10.5)


def test_refill_stops_at_the_burst():
    b = TokenBucket(rate_per_s=1, burst=2)
    b.try_take(0)
    assert b.full(1000) and [b.try_take(1000) for _ in range(3)] == [True, True, False]


def test_taking_several_at_once():
    b = TokenBucket(rate_per_s=1, burst=5)
    assert b.try_take(0, 4) and not b.try_take(0, 2)
    assert b.wait_time(0, 2) == pytest.approx(1)
    assert b.try_take(1, 2)


def test_more_than_the_burst_is_never_possible():
    b = TokenBucket(rate_per_s=1, burst=2)
    assert b.wait_time(0, 3) == math.inf and not b.try_take(10**9, 3)


def test_a_clock_read_out_of_order_adds_no_tokens():
    b = TokenBucket(rate_per_s=1, burst=1)
    assert b.try_take(10)
    assert not b.try_take(5)  # earlier than the last read: no refill, and 10 stays the last time seen
    assert not b.try_take(10.5)
    assert b.try_take(11)


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (math.inf, 1), (math.nan, 1), (1, 0)])
def test_bad_rates_are_refused(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_n_must_be_positive():
    with pytest.raises(ValueError):
        TokenBucket(1, 1).wait_time(0, 0)


# ---- per provider and per recipient ----------------------------------------------------------------

def limits(max_recipients=100):
    return RateLimits({"gw": Rate(per_s=10, burst=2)}, Rate(per_s=0.5, burst=1), max_recipients)


def test_check_takes_from_both_buckets_only_when_both_allow():
    rl = limits()
    assert rl.check("gw", "+84912345678", 0) == 0
    # The recipient is empty (2 s to refill); the provider's token must not be spent on a refusal.
    assert rl.check("gw", "+84912345678", 0) == pytest.approx(2)
    assert rl.check("gw", "+84912345679", 0) == 0  # the provider still had its second token
    assert rl.check("gw", "+84912345670", 0) == pytest.approx(0.1)  # now the provider is the limit
    assert rl.check("gw", "+84912345670", 0.1) == 0


def test_the_wait_is_the_longer_of_the_two():
    rl = limits()
    rl.check("gw", "r1", 0)
    rl.check("gw", "r2", 0)
    assert rl.check("gw", "r1", 0) == pytest.approx(2)  # recipient 2 s, provider 0.1 s


def test_a_recipient_limit_holds_across_providers():
    rl = RateLimits({"gw1": Rate(10, 10), "gw2": Rate(10, 10)}, Rate(per_s=1, burst=1))
    assert rl.check("gw1", "r", 0) == 0
    assert rl.check("gw2", "r", 0) == pytest.approx(1)  # failing over does not reset the recipient


def test_providers_without_a_rate_and_no_recipient_rate_are_unlimited():
    rl = RateLimits({}, None)
    assert all(rl.check("any", "r", 0) == 0 for _ in range(1000)) and len(rl) == 0


def test_recipient_buckets_are_bounded_and_the_idle_full_ones_go_first():
    rl = limits(max_recipients=3)
    for i, r in enumerate(["a", "b", "c"]):
        rl.check("gw", r, i)
    rl.check("gw", "a", 10)  # a is now the most recently used; b is the least
    rl.check("gw", "d", 10)
    assert len(rl) == 3 and rl.evicted_unfull == 0  # b had refilled: dropping it lost nothing
    assert rl.check("gw", "a", 10) > 0  # a kept its state
    assert rl.check("gw", "c", 10.1) == 0 and rl.check("gw", "d", 10.2) > 0


def test_memory_wins_when_every_bucket_is_busy_and_it_is_counted():
    rl = RateLimits({}, Rate(per_s=0.001, burst=1), max_recipients=2)
    for r in ["a", "b", "c"]:
        rl.check("gw", r, 0)
    assert len(rl) == 2 and rl.evicted_unfull == 1


def test_max_recipients_must_be_positive():
    with pytest.raises(ValueError):
        RateLimits({}, None, max_recipients=0)


# ---- properties ------------------------------------------------------------------------------------

rates = st.floats(0.01, 1000)
bursts = st.integers(1, 50)
schedules = st.lists(st.tuples(st.floats(0, 10), st.integers(1, 5)), min_size=1, max_size=300)


@given(rates, bursts, schedules)
def test_never_more_than_burst_plus_rate_times_elapsed(rate, burst, schedule):
    b = TokenBucket(rate, burst)
    now, takes = 0.0, []
    for dt, n in schedule:
        now += dt
        if b.try_take(now, n):
            takes.append((now, n))
    for i in range(len(takes)):  # every window between two takes, both ends included
        taken = 0
        for j in range(i, len(takes)):
            taken += takes[j][1]
            assert taken <= burst + rate * (takes[j][0] - takes[i][0]) + 1e-6


@given(rates, bursts, schedules)
def test_waiting_the_wait_time_is_enough(rate, burst, schedule):
    b = TokenBucket(rate, burst)
    now = 0.0
    for dt, n in schedule:
        now += dt
        wait = b.wait_time(now, n)
        if n > burst:
            assert wait == math.inf
            continue
        assert wait >= 0
        if wait > 0:
            assert not b.try_take(now, n)
        assert b.try_take(now + wait, n)
        now += wait


@given(st.lists(st.tuples(st.floats(0, 5), st.sampled_from(["gw", "other"]), st.sampled_from("abcde")),
                max_size=300))
def test_check_keeps_every_bucket_within_its_limit(events):
    provider_rate, recipient_rate = Rate(per_s=3, burst=4), Rate(per_s=0.5, burst=2)
    rl = RateLimits({"gw": provider_rate}, recipient_rate, max_recipients=10)
    now, sent = 0.0, []
    for dt, provider, recipient in events:
        now += dt
        wait = rl.check(provider, recipient, now)
        assert wait >= 0
        if wait == 0:
            sent.append((now, provider, recipient))
    # Over every window [t0, t1] of sends, each key stayed within burst + rate × (t1 - t0).
    for key, rate, index in [("gw", provider_rate, 1), *[(r, recipient_rate, 2) for r in "abcde"]]:
        times = [s[0] for s in sent if s[index] == key]
        for i in range(len(times)):
            for j in range(i, len(times)):
                assert j - i + 1 <= rate.burst + rate.per_s * (times[j] - times[i]) + 1e-6
