"""Which provider takes a message now: the configured providers per channel, SMS failover by weighted
priority and health, rate limits per provider and per recipient, and the simulator for test mode and
the magic drill recipients."""
from __future__ import annotations

import random
from dataclasses import dataclass

from services.notify.delivery.failover import HealthPolicy, ProviderPool, ProviderSpec, provider_failed
from services.notify.delivery.outcome import Receipt, SendOutcome, Verdict
from services.notify.delivery.providers import Provider, ReceiptParser
from services.notify.delivery.ratelimit import Rate, RateLimits
from services.notify.delivery.simulated import SimulatedProvider, simulated
from services.notify.delivery.sms import build_sms_providers
from services.notify.delivery.smtp import SmtpProvider
from services.notify.delivery.webhook import SecretSource, WebhookProvider
from services.notify.settings import NotifySettings

@dataclass(frozen=True)
class Wait:
    """No provider may take the message now: try again in `seconds`."""

    seconds: float


class Senders:
    def __init__(self, settings: NotifySettings, *, email: Provider | None, sms: list[Provider],
                 webhook: Provider | None, rng: random.Random | None = None, health: HealthPolicy | None = None):
        self._s = settings
        self._email, self._webhook = email, webhook
        self._sms = {p.name: p for p in sms}
        self._pool = ProviderPool([ProviderSpec(p.name, getattr(p, "priority", 1), getattr(p, "weight", 1))
                                   for p in sms], health, rng=rng)
        self._limits = RateLimits(
            {p.name: Rate(settings.notify_provider_rate_per_s, settings.notify_provider_burst) for p in sms},
            Rate(settings.notify_recipient_rate_per_s, settings.notify_recipient_burst))
        self._simulators = {c: SimulatedProvider(c) for c in ("email", "sms", "webhook")}

    @classmethod
    def from_settings(cls, settings: NotifySettings, secrets: SecretSource, *,
                      health: HealthPolicy | None = None) -> Senders:
        """`health`: the SMS failover policy (failover.py's defaults when None)."""
        return cls(settings, email=SmtpProvider(settings), sms=build_sms_providers(settings),
                   webhook=WebhookProvider(secrets, timeout_s=settings.notify_webhook_timeout_s), health=health)

    def supports(self, channel: str, recipient: str) -> bool:
        """Whether anything can send to `recipient` on `channel`."""
        if self._s.notify_test_mode or simulated(channel, recipient) is not None:
            return True
        return {"email": self._email is not None, "sms": bool(self._sms), "webhook": self._webhook is not None
                }.get(channel, False)

    def retry_window_s(self, priority: int) -> float:
        windows = self._s.notify_retry_window_s
        return windows[min(max(priority, 0), len(windows) - 1)]

    def pick(self, channel: str, recipient: str, now: float, priority: int = 2) -> Provider | Wait:
        """The provider for one send now, or how long to wait (rate limits; every SMS provider cooling down
        still yields the one back first, so a message is never parked forever)."""
        if simulated(channel, recipient) is not None:
            return self._simulators[channel]
        if self._s.notify_test_mode:
            return _Drill(self._simulators[channel])
        if channel == "sms":
            name = self._pool.choose(now)
            provider = self._sms.get(name) if name else None
        else:
            provider = self._email if channel == "email" else self._webhook
        if provider is None:
            return Wait(self._s.notify_retry_max_s)
        # An emergency is never held back by the provider's bucket, which the backlog keeps empty: it would
        # bounce behind normal messages. A provider that refuses answers 429, which is retried.
        wait = self._limits.check(provider.name if priority > 0 else None, recipient, now)
        return Wait(wait) if wait > 0 else provider

    def record(self, provider: Provider, outcome: SendOutcome, now: float) -> None:
        """Failover learns from every SMS answer: provider trouble lowers its health, success restores it."""
        if provider.name in self._sms:
            self._pool.record(provider.name, not provider_failed(outcome), now)

    def by_name(self, name: str) -> Provider | None:
        if name in self._sms:
            return self._sms[name]
        for p in (self._email, self._webhook, *self._simulators.values()):
            if p is not None and p.name == name:
                return p
        return None

    def receipt_parser(self, name: str) -> ReceiptParser | None:
        provider = self._sms.get(name)
        return provider if provider is not None and hasattr(provider, "receipt") else None

    def health(self, now: float) -> list:
        return self._pool.snapshot(now)

    async def aclose(self) -> None:
        for p in (self._email, self._webhook, *self._sms.values()):
            if p is not None:
                await p.aclose()


class _Drill:
    """Test mode: every message is simulated as delivered, whoever it is for; nothing leaves."""

    def __init__(self, simulator: SimulatedProvider):
        self.name, self.channel = "test-mode", simulator.channel

    async def send(self, message) -> SendOutcome:
        return SendOutcome(Verdict.delivered, "test-mode", provider_ref=f"test-mode:{message.notification_id}")

    async def lookup(self, provider_ref, reference) -> Receipt | None:
        return None

    async def aclose(self) -> None:
        return None
