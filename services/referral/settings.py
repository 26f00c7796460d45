from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from runtime.settings import ServiceSettings
from services.referral.matching.loader import DEFAULT_RULES
from services.referral.referrals.links import MIN_SECRET_BYTES


class ReferralSettings(ServiceSettings):
    port: int = 8002
    # Minutes an agency has to acknowledge a referral, by urgency.
    ack_minutes_emergency: int = Field(15, ge=1)
    ack_minutes_high: int = Field(120, ge=1)
    ack_minutes_normal: int = Field(24 * 60, ge=1)
    # After the reminder, minutes until an unacknowledged referral escalates one level, by urgency.
    escalate_minutes_emergency: int = Field(15, ge=1)
    escalate_minutes_high: int = Field(60, ge=1)
    escalate_minutes_normal: int = Field(12 * 60, ge=1)
    deadline_scan_s: float = Field(5.0, gt=0)  # how often due reminders and escalations are looked for
    # The matching rules (services/referral/matching/rules.yaml unless set) and how often to look for changes.
    rules_file: Path = DEFAULT_RULES
    rules_reload_s: float = Field(5.0, gt=0)
    # Signs the one-click acknowledge links in alerts. Serving refuses to start without it (migrate and
    # seed do not need it); `make run` keeps one in .data/referral-link.secret.
    referral_link_secret: SecretStr | None = None
    referral_public_url: str = "http://127.0.0.1:8002"  # where agencies reach GET /ack/{token}
    # An active unit whose data was last verified longer ago than this (or never) is listed as stale.
    directory_stale_days: int = Field(180, ge=1)

    @field_validator("referral_link_secret")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value():
            return None  # `REFERRAL_LINK_SECRET=` means unset
        if v is not None and len(v.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"REFERRAL_LINK_SECRET must be at least {MIN_SECRET_BYTES} bytes long")
        return v
