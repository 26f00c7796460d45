"""Which provider sends next: failover by weighted priority, shifting away from a failing provider and
drifting back as it recovers.

Priority tiers are strict: the best tier with an available provider takes the message. Within a tier,
a provider is picked with probability proportional to weight × health. Health falls multiplicatively
on each provider failure and climbs back additively on each success (AIMD), so a flaky provider loses
its share at once but regains it over several successes. Consecutive failures open a circuit: the
provider is skipped for a cool-down, then half-open (one trial message), then closed on a success or
open again, for twice as long, on a failure.

Time is passed in (monotonic seconds) and randomness is injected: the pool is pure and deterministic.
Not thread-safe; one pool per event loop.
"""
from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from services.notify.delivery.outcome import SendOutcome, Verdict


class Circuit(StrEnum):
    closed = "closed"
    open = "open"  # cooling down: not chosen while another provider is available
    half_open = "half-open"  # cool-down over: the next message is a trial


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    priority: int  # lower first
    weight: float  # share within its tier, > 0


@dataclass(frozen=True)
class HealthPolicy:
    decrease: float = 0.5  # health × this on each failure
    recovery: float = 0.1  # health + this on each success: ten successes from the floor to full
    min_health: float = 0.05  # a floor, so a recovering provider still gets some traffic in its tier
    failure_threshold: int = 5  # consecutive failures that open the circuit
    cooldown_s: float = 30.0
    max_cooldown_s: float = 600.0  # the cool-down doubles on each failed trial, up to this

    def __post_init__(self):
        if not 0 < self.decrease < 1:
            raise ValueError("decrease must be in (0, 1)")
        if not 0 < self.min_health <= 1:
            raise ValueError("min_health must be in (0, 1]")
        if not (self.recovery > 0 and math.isfinite(self.recovery)):
            raise ValueError("recovery must be > 0")
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if not 0 < self.cooldown_s <= self.max_cooldown_s < math.inf:
            raise ValueError("need 0 < cooldown_s <= max_cooldown_s")


@dataclass(frozen=True)
class ProviderState:
    """One provider as ops see it (metrics, an admin endpoint)."""

    name: str
    priority: int
    weight: float
    health: float
    circuit: Circuit
    consecutive_failures: int
    available_at: float | None  # when an open circuit (or a trial in flight) next lets a message through


def provider_failed(outcome: SendOutcome) -> bool:
    """Whether a send counts against the provider: trouble that is ours or theirs (timeouts, 5xx,
    connection errors), not the recipient's (a bad number, a full mailbox), which says nothing of it."""
    return outcome.verdict is Verdict.retry and outcome.exhausts_to == "technical-failure"


class _Slot:
    __slots__ = ("spec", "health", "failures", "open_until", "trial_until", "cooldown")

    def __init__(self, spec: ProviderSpec, policy: HealthPolicy):
        self.spec = spec
        self.health = 1.0
        self.failures = 0  # consecutive
        self.open_until: float | None = None  # None: closed; past it: half-open
        self.trial_until: float | None = None  # a trial is in flight until then (freed if never recorded)
        self.cooldown = policy.cooldown_s

    def circuit(self, now: float) -> Circuit:
        if self.open_until is None:
            return Circuit.closed
        return Circuit.open if now < self.open_until else Circuit.half_open

    def available(self, now: float) -> bool:
        circuit = self.circuit(now)
        if circuit is Circuit.half_open:
            return self.trial_until is None or now >= self.trial_until
        return circuit is Circuit.closed

    def available_at(self, now: float) -> float | None:
        circuit = self.circuit(now)
        if circuit is Circuit.open:
            return self.open_until
        if circuit is Circuit.half_open and self.trial_until is not None and now < self.trial_until:
            return self.trial_until
        return None


class ProviderPool:
    def __init__(self, providers: Iterable[ProviderSpec], policy: HealthPolicy | None = None,
                 rng: random.Random | None = None):
        self._policy = policy or HealthPolicy()
        self._rng = rng or random.Random()
        self._slots: dict[str, _Slot] = {}
        for spec in providers:
            if not spec.name:
                raise ValueError("a provider needs a name")
            if spec.name in self._slots:
                raise ValueError(f"provider {spec.name!r} is listed twice")
            if not (spec.weight > 0 and math.isfinite(spec.weight)):
                raise ValueError(f"provider {spec.name!r}: weight must be > 0")
            self._slots[spec.name] = _Slot(spec, self._policy)
        # Tiers in priority order; within a tier, the order given, so a seeded rng replays exactly.
        self._tiers: list[list[_Slot]] = []
        for priority in sorted({s.spec.priority for s in self._slots.values()}):
            self._tiers.append([s for s in self._slots.values() if s.spec.priority == priority])

    def choose(self, now: float, exclude: Collection[str] = ()) -> str | None:
        """The provider for the next message; None only when every provider is excluded (or there are none)."""
        for tier in self._tiers:
            ready = [s for s in tier if s.spec.name not in exclude and s.available(now)]
            if ready:
                slot = self._pick(ready)
                if slot.circuit(now) is Circuit.half_open:
                    # One trial at a time; if its result never comes back, the slot frees after a cool-down.
                    slot.trial_until = now + slot.cooldown
                return slot.spec.name
        # Everything is cooling down: better to try the one that recovers first than to send nothing.
        waiting = [s for s in self._slots.values() if s.spec.name not in exclude]
        if not waiting:
            return None
        return min(waiting, key=lambda s: (s.available_at(now) or now, s.spec.priority)).spec.name

    def record(self, name: str, ok: bool, now: float) -> None:
        """The result of a send through `name`. ok=False only for provider trouble (see provider_failed):
        a permanent recipient error is ok=True, since the provider answered."""
        slot = self._slots[name]
        p = self._policy
        circuit = slot.circuit(now)
        if ok:
            slot.health = min(1.0, slot.health + p.recovery)
            slot.failures = 0
            if circuit is Circuit.half_open:
                slot.open_until = slot.trial_until = None
                slot.cooldown = p.cooldown_s
            return
        slot.health = max(p.min_health, slot.health * p.decrease)
        slot.failures += 1
        if circuit is Circuit.half_open:  # the trial failed: cool down for longer
            slot.cooldown = min(p.max_cooldown_s, slot.cooldown * 2)
            slot.open_until, slot.trial_until = now + slot.cooldown, None
        elif circuit is Circuit.closed and slot.failures >= p.failure_threshold:
            slot.open_until = now + slot.cooldown
        # While open, late failures (sent before it opened) do not push the cool-down further.

    def snapshot(self, now: float) -> list[ProviderState]:
        return [
            ProviderState(s.spec.name, s.spec.priority, s.spec.weight, s.health, s.circuit(now), s.failures,
                          s.available_at(now))
            for tier in self._tiers for s in tier
        ]

    def _pick(self, slots: list[_Slot]) -> _Slot:
        total = sum(s.spec.weight * s.health for s in slots)
        point = self._rng.random() * total
        for slot in slots:
            point -= slot.spec.weight * slot.health
            if point < 0:
                return slot
        return slots[-1]  # float rounding left point at ~0
