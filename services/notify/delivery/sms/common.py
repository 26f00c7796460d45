"""What the SMS adapters share: HTTP answers → outcomes, JSON paths, header lookup, failover order."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import httpx

from schemas.events.notifications import DeliveryStatus as S
from services.notify.delivery.outcome import TIMEOUT, SendOutcome, Verdict
from services.notify.delivery.providers import Provider, ReceiptParser

MAX_CODE = 100  # notifications.provider_code
MAX_REF = 200  # notifications.provider_ref
MAX_CALLBACK_BYTES = 64 * 1024  # a receipt is a few hundred bytes; refuse to parse more
# 4xx answers about us, not the recipient (credentials, URL, timeout, size): retried, then technical-failure.
OUR_4XX = frozenset({401, 403, 404, 405, 407, 408, 413, 415})


class SmsProvider(Provider, ReceiptParser, Protocol):
    priority: int
    weight: int
    callback_url: str  # where its receipts come: <SMS_CALLBACK_BASE_URL>/callbacks/sms/<name>


def status_code(status: str | None, error: str | None, fallback: str = "") -> str:
    """The provider's status and error code as one audit code ("undelivered:30003")."""
    return (":".join(part for part in (status, error) if part) or fallback)[:MAX_CODE]


class SmsAccount:
    """What every SMS adapter holds: its configured account, and where the provider calls back."""

    channel = "sms"

    def __init__(self, config: Any, callback_base_url: str):
        self.config = config
        self.name = config.name
        self.priority = config.priority
        self.weight = config.weight
        self.callback_url = f"{callback_base_url.rstrip('/')}/callbacks/sms/{config.name}"


def outcome_for_state(state: S | None, code: str, provider_ref: str | None) -> SendOutcome:
    """A 2xx answer, read through the provider's status: usually accepted; some gateways answer a final state."""
    if state is S.delivered:
        return SendOutcome(Verdict.delivered, code, provider_ref)
    if state is S.permanent_failure:
        return SendOutcome(Verdict.permanent, code, provider_ref)
    if state in (S.temporary_failure, S.technical_failure):
        return SendOutcome(Verdict.retry, code, provider_ref, exhausts_to=state.value)
    return SendOutcome(Verdict.accepted, code, provider_ref)


def outcome_for_refusal(http_status: int, code: str, state: S | None = None) -> SendOutcome:
    """A non-2xx answer. `state` is what the provider's error code means, when its table knows the code."""
    if http_status == 429 or http_status >= 500 or http_status in OUR_4XX:
        return SendOutcome(Verdict.retry, code)
    if state in (S.temporary_failure, S.technical_failure):
        return SendOutcome(Verdict.retry, code, exhausts_to=state.value)
    return SendOutcome(Verdict.permanent, code)  # the provider refused this message or number


def outcome_for_transport_error(exc: httpx.HTTPError) -> SendOutcome:
    # A timeout may come after the provider took the message: the dispatcher can ask lookup() before resending.
    code = TIMEOUT if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
    return SendOutcome(Verdict.retry, code[:MAX_CODE])


def get_path(data: Any, path: str | None) -> Any:
    """data["a"]["b"][0] for "a.b.0"; None when any step is missing."""
    if path is None:
        return None
    for part in path.split("."):
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def set_path(data: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def scalar(value: Any, limit: int) -> str | None:
    """A JSON string or number as text (ids come as either); None for anything else or too long."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= limit else None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive, for Starlette's Headers and plain dicts alike."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == lower), None)
    return value if isinstance(value, str) else None


P = TypeVar("P")

