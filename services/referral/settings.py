from pathlib import Path

from pydantic import Field

from runtime.settings import ServiceSettings
from services.referral.matching.loader import DEFAULT_RULES


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
