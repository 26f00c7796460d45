"""Webhooks: the referral as a structured-mode CloudEvent, POSTed and signed the Standard Webhooks way.

Each request carries ``webhook-id`` (the notification id: the same on every retry, so a receiver drops
duplicates), ``webhook-timestamp`` (this attempt) and ``webhook-signature``: one ``v1,<base64 HMAC-SHA256>``
per valid secret of the endpoint, space-separated, so during a rotation a receiver holding either secret
verifies. A 2xx is delivered; 408, 429, 5xx and no answer are retried; any other answer is permanent.
"""
import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
from standardwebhooks import Webhook

from runtime.cloudevents import CONTENT_TYPE, SPECVERSION
from runtime.logging import get_logger
from services.notify.delivery.outcome import TIMEOUT, Receipt, SendOutcome, Verdict
from services.notify.delivery.providers import OutgoingMessage

log = get_logger(__name__)
# httpx logs each request's URL at INFO; a receiver's URL may hold its access token.
logging.getLogger("httpx").setLevel(logging.WARNING)

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
GONE = "410"  # the receiver says the endpoint is gone for good: deactivate it (services.notify.webhooks.service)
INACTIVE = "endpoint-inactive"  # no valid secret: the endpoint was deactivated, or is unknown
DEFAULT_TIMEOUT_S = 10.0
USER_AGENT = "hotline111-notify"
_RETRY_4XX = frozenset({408, 429})

# (endpoint id, now) -> the endpoint's valid secrets, newest first; services.notify.webhooks.service.secret_source
SecretSource = Callable[[UUID, datetime], Awaitable[list[str]]]


def cloudevent_for(event_type: str, source: str, subject: str, data: dict, id: str, time: datetime) -> str:
    """A CloudEvent 1.0 in structured mode (JSON event format): what a webhook's body is."""
    if not (event_type and source and id):
        raise ValueError("a CloudEvent needs a type, a source and an id")
    if time.tzinfo is None:
        raise ValueError("a CloudEvent's time must carry its offset (RFC 3339)")
    event: dict[str, Any] = {"specversion": SPECVERSION, "id": id, "source": source, "type": event_type}
    if subject:
        event["subject"] = subject
    event |= {"time": time.astimezone(UTC).isoformat(), "datacontenttype": CONTENT_TYPE, "data": data}
    # ASCII-only JSON: the signed text and the bytes sent are the same under any receiver's decoding.
    return json.dumps(event, separators=(",", ":"))


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """``webhook-signature``: one ``v1,…`` per secret, space-separated (Standard Webhooks)."""
    if not secrets:
        raise ValueError("at least one secret signs a webhook")
    # The library takes the timestamp as UTC wall time (it replaces tzinfo), so convert first.
    at = timestamp.astimezone(UTC)
    return " ".join(Webhook(s).sign(msg_id, at, body) for s in secrets)


def outcome_for_status(status: int) -> SendOutcome:
    """A receiver's answer. Redirects are not followed and count as permanent: the URL needs fixing."""
    code = str(status)
    if 200 <= status < 300:
        return SendOutcome(Verdict.delivered, code)
    if status in _RETRY_4XX or status >= 500:
        return SendOutcome(Verdict.retry, code, exhausts_to="temporary-failure")
    return SendOutcome(Verdict.permanent, code)


def is_gone(outcome: SendOutcome) -> bool:
    """The endpoint answered 410 Gone: deactivate it, so nothing more is queued for it."""
    return outcome.verdict is Verdict.permanent and outcome.code == GONE


class WebhookProvider:
    """Provider for channel ``webhook``. `send` signs with every secret `secrets` gives for
    ``message.webhook_endpoint_id``; `send_signed` with the secrets it is given. ``message.headers`` is not
    sent: the receiver gets the CloudEvent and the Standard Webhooks headers, all of them signed or fixed."""

    name = "webhook"
    channel = "webhook"

    def __init__(self, secrets: SecretSource, timeout_s: float = DEFAULT_TIMEOUT_S,
                 client: httpx.AsyncClient | None = None):
        self._secrets = secrets
        self._timeout_s = timeout_s
        self._client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False,
                                                   headers={"user-agent": USER_AGENT})

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        endpoint_id = message.webhook_endpoint_id
        if endpoint_id is None:  # a dispatcher bug, but the message must still settle
            log.error("webhook_without_endpoint", notification_id=message.notification_id)
            return SendOutcome(Verdict.permanent, "no-endpoint-id")
        try:
            secrets = await self._secrets(endpoint_id, datetime.now(UTC))
        except Exception as exc:  # noqa: BLE001 - database or key trouble is ours: retry, then technical-failure
            log.error("webhook_secrets_unavailable", endpoint_id=str(endpoint_id), error=type(exc).__name__)
            return SendOutcome(Verdict.retry, "secrets-unavailable")
        if not secrets:
            return SendOutcome(Verdict.permanent, INACTIVE)
        return await self.send_signed(message, secrets)

    async def send_signed(self, message: OutgoingMessage, secrets: Sequence[str]) -> SendOutcome:
        # Whole seconds: the header and the signed text must name the same second.
        now = datetime.now(UTC).replace(microsecond=0)
        headers = {
            "content-type": STRUCTURED_CONTENT_TYPE,
            "webhook-id": message.notification_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(secrets, message.notification_id, now, message.body),
        }
        try:
            # One bound for the whole exchange: httpx's timeouts are per read, so a trickling receiver
            # could otherwise hold a worker far longer.
            async with asyncio.timeout(self._timeout_s):
                # Streamed and never read: the receiver's body is not ours to keep, however large.
                async with self._client.stream("POST", message.recipient, content=message.body.encode(),
                                               headers=headers) as response:
                    return outcome_for_status(response.status_code)
        except (TimeoutError, httpx.TimeoutException):
            return SendOutcome(Verdict.retry, TIMEOUT, exhausts_to="temporary-failure")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            return SendOutcome(Verdict.permanent, "invalid-url")
        except httpx.TransportError as exc:
            # The receiver's host is down or refuses: its side, like a 503.
            return SendOutcome(Verdict.retry, type(exc).__name__, exhausts_to="temporary-failure")

    async def lookup(self, provider_ref: str | None, reference: str) -> Receipt | None:
        """A receiver has no status to ask for. Resending is safe: the webhook-id lets it drop a duplicate."""
        return None

    async def aclose(self) -> None:
        await self._client.aclose()
