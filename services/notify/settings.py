from pydantic import Field, SecretStr

from runtime.settings import ServiceSettings
from services.notify.delivery.sms.config import SmsProviderList


class NotifySettings(ServiceSettings):
    port: int = 8003
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    notify_email_from: str = "111 Hotline <alerts@hotline111.example>"
    pii_encryption_keys: SecretStr  # webhook secrets are encrypted at rest (runtime.crypto)
    notify_max_attempts: int = Field(8, ge=1)
    notify_retry_base_s: float = 2.0
    notify_retry_max_s: float = 300.0  # the longest wait between two attempts
    # How long a message is retried, by priority: emergency, high, normal. Then it fails for good and
    # referral tries the unit's next contact.
    notify_retry_window_s: tuple[float, float, float] = (300.0, 1800.0, 3600.0)
    # A send's lease: a provider call not answered in this time means its worker died; reconcile.py asks
    # the provider instead of sending again. Keep it above every provider's timeout.
    notify_claim_lease_s: float = 60.0
    notify_batch_size: int = 50
    notify_poll_s: float = 1.0
    notify_reconcile_s: float = 15.0
    notify_receipt_wait_s: float = 300.0  # a "sent" message with no receipt after this is looked up
    notify_webhook_timeout_s: float = 10.0
    # Test mode: every message is simulated as delivered, nothing is sent (drills). The magic recipients
    # of delivery/simulated.py are simulated always.
    notify_test_mode: bool = False
    # The seed directory's placeholder SMS numbers reach the local gateway (development stacks only).
    notify_fictitious_numbers: bool = False
    # Rate limits (token buckets): per SMS provider, and per recipient on every channel.
    notify_provider_rate_per_s: float = 50.0
    notify_provider_burst: int = 100
    notify_recipient_rate_per_s: float = 1.0
    notify_recipient_burst: int = 10
    # SMS_PROVIDERS: a JSON list of SMS provider accounts (README.md, "SMS providers").
    sms_providers: SmsProviderList = []
    # Notify's address as the providers reach it: receipts come to <url>/callbacks/sms/<provider name>.
    sms_callback_base_url: str = "http://127.0.0.1:8003"
