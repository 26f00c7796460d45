"""Twilio's Programmable Messaging API (2010-04-01): send, look up, and its signed status callbacks."""
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

from schemas.events.notifications import DeliveryStatus as S
from services.notify.delivery.outcome import Receipt, SendOutcome
from services.notify.delivery.providers import BadCallback, OutgoingMessage
from services.notify.delivery.sms.codes import twilio_error, twilio_status
from services.notify.delivery.sms.common import (
    MAX_CALLBACK_BYTES, MAX_CODE, MAX_REF, SmsAccount, header, outcome_for_refusal, outcome_for_state,
    outcome_for_transport_error, scalar, status_code,
)
from services.notify.delivery.sms.config import TwilioSmsConfig

SIGNATURE_HEADER = "X-Twilio-Signature"


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature: base64 HMAC-SHA1, keyed by the auth token, of the full URL followed by
    every POST parameter's name and value, sorted by name (a repeated name's values sorted too)."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    data = url + "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))
    mac = hmac.new(auth_token.encode(), data.encode("utf-8", "surrogatepass"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def _url_variants(url: str) -> list[str]:
    # Twilio may sign with or without the default port (its own validators accept both).
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return [url]
    host = parts.netloc
    if port is not None:
        other = parts._replace(netloc=host[: host.rfind(":")])
    else:
        other = parts._replace(netloc=f"{host}:{443 if parts.scheme == 'https' else 80}")
    return [url, other.geturl()]


class TwilioSmsProvider(SmsAccount):
    def __init__(self, config: TwilioSmsConfig, callback_base_url: str):
        super().__init__(config, callback_base_url)
        self._token = config.auth_token.get_secret_value()
        self._messages = f"/2010-04-01/Accounts/{config.account_sid}/Messages"
        # One client per provider: its connection pool is kept across sends.
        self._client = httpx.AsyncClient(base_url=config.base_url, timeout=config.timeout_s,
                                         auth=httpx.BasicAuth(config.account_sid, self._token),
                                         headers={"Accept": "application/json"})

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        # Twilio takes no reference of ours: its sid (provider_ref) is the only key of the message.
        form = {"To": message.recipient, "Body": message.body, "StatusCallback": self.callback_url}
        if self.config.messaging_service_sid:
            form["MessagingServiceSid"] = self.config.messaging_service_sid
        else:
            form["From"] = self.config.from_number
        try:
            resp = await self._client.post(f"{self._messages}.json", data=form)
        except httpx.HTTPError as exc:
            return outcome_for_transport_error(exc)
        data = _json(resp)
        if resp.is_success:
            status = scalar(data.get("status"), MAX_CODE)
            error = scalar(data.get("error_code"), MAX_CODE)
            state = twilio_status(status, error) if status else None
            return outcome_for_state(state, status_code(status, error) or str(resp.status_code),
                                     scalar(data.get("sid"), MAX_REF))
        # Twilio's error answer: {"code": 21211, "message": ..., "more_info": ..., "status": 400}
        code = scalar(data.get("code"), MAX_CODE)
        return outcome_for_refusal(resp.status_code, code or f"http-{resp.status_code}", twilio_error(code))

    async def lookup(self, provider_ref: str | None, reference: str) -> Receipt | None:
        if not provider_ref:
            return None  # Twilio cannot find a message by our reference
        try:
            resp = await self._client.get(f"{self._messages}/{quote(provider_ref, safe='')}.json")
        except httpx.HTTPError:
            return None
        data = _json(resp)
        status = scalar(data.get("status"), MAX_CODE)
        if not resp.is_success or status is None:
            return None
        error = scalar(data.get("error_code"), MAX_CODE)
        state = twilio_status(status, error)
        if state is None:
            return None
        return Receipt(scalar(data.get("sid"), MAX_REF) or provider_ref, state, status_code(status, error), reference)

    def receipt(self, body: bytes, headers: Mapping[str, str], url: str) -> Receipt:
        """`url` is the callback URL exactly as Twilio called it, query string included (it is signed)."""
        if len(body) > MAX_CALLBACK_BYTES:
            raise BadCallback("callback body too large")
        given = header(headers, SIGNATURE_HEADER)
        if not given:
            raise BadCallback(f"missing {SIGNATURE_HEADER}")
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
        except (UnicodeDecodeError, ValueError):
            raise BadCallback("callback body is not a form") from None
        given = given.strip().encode("ascii", "replace")
        if not any(hmac.compare_digest(twilio_signature(self._token, u, params).encode(), given)
                   for u in _url_variants(url)):
            raise BadCallback("signature does not match")
        form = dict(params)
        ref = scalar(form.get("MessageSid") or form.get("SmsSid"), MAX_REF)
        status = scalar(form.get("MessageStatus") or form.get("SmsStatus"), MAX_CODE)
        if ref is None or status is None:
            raise BadCallback("callback lacks MessageSid or MessageStatus")
        error = scalar(form.get("ErrorCode"), MAX_CODE)
        # A status Twilio adds later leaves the message in flight, its code kept; a lookup settles it.
        state = twilio_status(status, error) or S.sent
        return Receipt(ref, state, status_code(status, error))

    async def aclose(self) -> None:
        await self._client.aclose()


def _json(resp: httpx.Response) -> dict:
    try:
        data = resp.json()
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
