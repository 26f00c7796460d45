"""Token buckets per provider and per recipient.

A provider's bucket keeps us within the rate its contract allows (past it, gateways answer 429 or drop
messages). A recipient's bucket keeps a loop or a burst of reminders from flooding one duty phone, and
holds across providers, so failing over never resets it. Time is passed in (monotonic seconds).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

# Float slack, in tokens: waiting exactly wait_time() must then succeed despite rounding.
EPSILON = 1e-9


@dataclass(frozen=True)
class Rate:
    per_s: float  # sustained tokens per second
    burst: int  # bucket size: how many at once after a quiet spell

    def __post_init__(self):
        if not (self.per_s > 0 and math.isfinite(self.per_s)):
            raise ValueError("per_s must be a positive number")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")


class TokenBucket:
    """Starts full. Over any interval of length t it gives at most burst + rate_per_s × t tokens."""

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate_per_s: float, burst: int):
        Rate(rate_per_s, burst)  # validates
        self.rate, self.burst = float(rate_per_s), burst
        self._tokens = float(burst)
        self._at: float | None = None

    def try_take(self, now: float, n: int = 1) -> bool:
        if self.wait_time(now, n) > 0:
            return False
        self._tokens = max(0.0, self._tokens - n)
        return True

    def wait_time(self, now: float, n: int = 1) -> float:
        """Seconds until n tokens are there (0: now; inf: never, n is over the burst)."""
        if n < 1:
            raise ValueError("n must be at least 1")
        if n > self.burst:
            return math.inf
        self._refill(now)
        missing = n - self._tokens
        return 0.0 if missing <= EPSILON else missing / self.rate

    def full(self, now: float) -> bool:
        self._refill(now)
        return self._tokens >= self.burst

    def _refill(self, now: float) -> None:
        if self._at is not None and now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        # A clock read out of order (now < _at) adds nothing and keeps _at, so no token is counted twice.
        if self._at is None or now > self._at:
            self._at = now


class RateLimits:
    """Buckets per provider name (from config) and per recipient (created on first use).

    Recipient buckets are kept in LRU order, at most `max_recipients` of them. The least recently used
    one has been idle longest, so it is usually full, and dropping a full bucket loses nothing (a new one
    starts full). `evicted_unfull` counts the times memory won over exactness: raise the bound if it grows.
    """

    def __init__(self, providers: Mapping[str, Rate], recipient: Rate | None, max_recipients: int = 10_000):
        if max_recipients < 1:
            raise ValueError("max_recipients must be at least 1")
        self._providers = {name: TokenBucket(r.per_s, r.burst) for name, r in providers.items()}
        self._recipient_rate = recipient
        self._recipients: OrderedDict[str, TokenBucket] = OrderedDict()
        self._max = max_recipients
        self.evicted_unfull = 0

    def check(self, provider: str | None, recipient: str, now: float) -> float:
        """0 and one token taken from each bucket when both allow a message now; else the seconds until
        both will, and nothing taken. A provider with no configured rate (or None) is not limited."""
        buckets = [b for b in (self._providers.get(provider), self._recipient_bucket(recipient, now)) if b]
        wait = max((b.wait_time(now) for b in buckets), default=0.0)
        if wait == 0:
            for b in buckets:
                b.try_take(now)
        return wait

    def __len__(self) -> int:
        return len(self._recipients)

    def _recipient_bucket(self, recipient: str, now: float) -> TokenBucket | None:
        if self._recipient_rate is None:
            return None
        bucket = self._recipients.get(recipient)
        if bucket is not None:
            self._recipients.move_to_end(recipient)
            return bucket
        while len(self._recipients) >= self._max:
            _, old = self._recipients.popitem(last=False)
            if not old.full(now):
                self.evicted_unfull += 1
        bucket = self._recipients[recipient] = TokenBucket(self._recipient_rate.per_s, self._recipient_rate.burst)
        return bucket
