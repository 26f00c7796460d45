"""Times operators enter: never in the future (a small clock skew allowed)."""
from datetime import UTC, datetime, timedelta

CLOCK_SKEW = timedelta(minutes=2)


def not_in_future(value: datetime | None) -> datetime | None:
    if value is not None and value > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError("must not be in the future")
    return value
