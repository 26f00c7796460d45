"""Provider statuses and error codes → our delivery states, one explicit table per provider (after GOV.UK Notify).

temporary-failure: the recipient's side (handset off, out of coverage), may work later.
permanent-failure: the number will not work (invalid, landline, unsubscribed, blocked).
technical-failure: ours or the provider's (account, configuration, capacity).
"""
from __future__ import annotations

from collections.abc import Mapping

from schemas.events.notifications import DeliveryStatus as S

# Generic JSON gateways: common words, and SMPP's final states (DELIVRD, UNDELIV, ...).
GENERIC_STATUS: dict[str, S] = {
    "accepted": S.sent,
    "queued": S.sent,
    "pending": S.sent,
    "submitted": S.sent,
    "enroute": S.sent,
    "sending": S.sent,
    "sent": S.sent,
    "delivered": S.delivered,
    "delivrd": S.delivered,
    "undelivered": S.temporary_failure,
    "undeliv": S.temporary_failure,
    "expired": S.temporary_failure,
    "failed": S.permanent_failure,
    "rejected": S.permanent_failure,
    "rejectd": S.permanent_failure,
    "invalid": S.permanent_failure,
    "error": S.technical_failure,
}

# Twilio MessageStatus. undelivered and failed are refined by TWILIO_ERRORS.
TWILIO_STATUS: dict[str, S] = {
    "accepted": S.sent,
    "scheduled": S.sent,
    "queued": S.sent,
    "sending": S.sent,
    "sent": S.sent,
    "delivered": S.delivered,
    "read": S.delivered,
    "undelivered": S.temporary_failure,  # without a known ErrorCode
    "failed": S.technical_failure,  # without a known ErrorCode: Twilio could not send it
    "canceled": S.technical_failure,
}

# Twilio ErrorCode (in callbacks and lookups) and API error `code` (in a 4xx answer).
TWILIO_ERRORS: dict[str, S] = {
    # the recipient, for now
    "30003": S.temporary_failure,  # unreachable destination handset
    "30005": S.temporary_failure,  # unknown destination handset (also long-off handsets)
    "30008": S.temporary_failure,  # unknown error from the carrier
    "30009": S.temporary_failure,  # missing segment
    "30034": S.temporary_failure,  # message blocked by carrier queue (retry later)
    # the number, for good
    "21211": S.permanent_failure,  # invalid To number
    "21408": S.technical_failure,  # sending to this region is not enabled on our account
    "21610": S.permanent_failure,  # the recipient replied STOP
    "21612": S.permanent_failure,  # To cannot be reached from this From
    "21614": S.permanent_failure,  # To is not a mobile number
    "30004": S.permanent_failure,  # message blocked (by the recipient or carrier)
    "30006": S.permanent_failure,  # landline or unreachable carrier
    "30007": S.permanent_failure,  # filtered by the carrier as spam
    # ours or Twilio's
    "20003": S.technical_failure,  # authentication failed
    "20429": S.technical_failure,  # too many requests
    "21212": S.technical_failure,  # From is not a valid number or sender id
    "21602": S.technical_failure,  # empty body
    "21606": S.technical_failure,  # From is not a valid number of ours
    "21617": S.technical_failure,  # body too long
    "30001": S.technical_failure,  # queue overflow
    "30002": S.technical_failure,  # account suspended
    "30010": S.technical_failure,  # price over our max price
}


def generic_status(status: str, overrides: Mapping[str, S] | None = None) -> S | None:
    """The state a generic gateway's status means; None when neither the config nor the defaults know it."""
    key = status.strip().lower()
    for table in (overrides or {}, GENERIC_STATUS):
        for name, state in table.items():
            if name.lower() == key:
                return state
    return None


def twilio_status(status: str, error_code: str | None = None) -> S | None:
    """The state of a Twilio MessageStatus; a failure's ErrorCode decides which failure. None if unknown."""
    key = status.strip().lower()
    state = TWILIO_STATUS.get(key)
    if key in ("undelivered", "failed"):
        return TWILIO_ERRORS.get((error_code or "").strip(), state)
    return state


def twilio_error(code: str | None) -> S | None:
    """What a Twilio API error code says about a message it refused; None if the table does not know it."""
    return TWILIO_ERRORS.get((code or "").strip())
