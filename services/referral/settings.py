from pydantic import Field

from runtime.settings import ServiceSettings


class ReferralSettings(ServiceSettings):
    port: int = 8002
    # Minutes an agency has to acknowledge a referral, by urgency.
    ack_minutes_emergency: int = Field(15, ge=1)
    ack_minutes_high: int = Field(60, ge=1)
    ack_minutes_normal: int = Field(24 * 60, ge=1)
