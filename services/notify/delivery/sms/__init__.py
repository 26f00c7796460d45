"""SMS providers: a generic HTTP/JSON gateway and Twilio, configured by SMS_PROVIDERS.

    providers = build_sms_providers(settings)           # NotifySettings; in priority order
    # which one takes a message: delivery/failover.py (weighted priority, health), via delivery/registry.py
    receipt = provider.receipt(raw_body, headers, url)  # a callback at <SMS_CALLBACK_BASE_URL>/callbacks/sms/<name>
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from services.notify.delivery.sms.common import SmsProvider
from services.notify.delivery.sms.config import GenericSmsConfig, SmsProviderConfig, TwilioSmsConfig
from services.notify.delivery.sms.generic import GenericSmsProvider
from services.notify.delivery.sms.twilio import TwilioSmsProvider

if TYPE_CHECKING:
    from services.notify.settings import NotifySettings

__all__ = ["GenericSmsProvider", "TwilioSmsProvider", "SmsProvider", "build_sms_provider", "build_sms_providers"]


def build_sms_provider(config: SmsProviderConfig, callback_base_url: str) -> SmsProvider:
    if isinstance(config, GenericSmsConfig):
        return GenericSmsProvider(config, callback_base_url)
    if isinstance(config, TwilioSmsConfig):
        return TwilioSmsProvider(config, callback_base_url)
    raise TypeError(f"unknown SMS adapter config {type(config).__name__}")


def build_sms_providers(settings: NotifySettings) -> list[SmsProvider]:
    """One provider per SMS_PROVIDERS entry, lowest priority first. Close each with aclose()."""
    configs = sorted(settings.sms_providers, key=lambda c: c.priority)
    return [build_sms_provider(c, settings.sms_callback_base_url) for c in configs]
