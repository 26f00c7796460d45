"""A generic HTTP/JSON SMS gateway, described by its GenericSmsConfig (field mapping, auth, status map)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from urllib.parse import quote

import httpx

from schemas.events.notifications import DeliveryStatus as S
from services.notify.delivery.outcome import NEVER_RECEIVED, Receipt, SendOutcome
from services.notify.delivery.providers import BadCallback, OutgoingMessage
from services.notify.delivery.sms.codes import generic_status
from services.notify.delivery.sms.common import (
    MAX_CALLBACK_BYTES, MAX_CODE, MAX_REF, SmsAccount, get_path, header, outcome_for_refusal, outcome_for_state,
    outcome_for_transport_error, scalar, set_path, status_code,
)
from services.notify.delivery.sms.config import BasicAuth, BearerAuth, GenericSmsConfig


def sign_body(secret: str, body: bytes, encoding: str = "hex") -> str:
    """HMAC-SHA256 of the raw body: what the gateway puts in the callback's signature header."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


class GenericSmsProvider(SmsAccount):
    def __init__(self, config: GenericSmsConfig, callback_base_url: str):
        super().__init__(config, callback_base_url)
        auth, headers = None, {"Accept": "application/json"}
        if isinstance(config.auth, BearerAuth):
            headers["Authorization"] = f"Bearer {config.auth.token.get_secret_value()}"
        elif isinstance(config.auth, BasicAuth):
            auth = httpx.BasicAuth(config.auth.username, config.auth.password.get_secret_value())
        # One client per provider: its connection pool is kept across sends.
        self._client = httpx.AsyncClient(auth=auth, headers=headers, timeout=config.timeout_s)

    def _state(self, status: str | None) -> S | None:
        return generic_status(status, self.config.status_map) if status else None

    async def send(self, message: OutgoingMessage) -> SendOutcome:
        fields = self.config.request
        payload: dict = {}
        for path, value in fields.static.items():
            set_path(payload, path, value)
        set_path(payload, fields.to, message.recipient)
        set_path(payload, fields.body, message.body)
        if fields.reference:
            set_path(payload, fields.reference, message.notification_id)
        if fields.callback_url:
            set_path(payload, fields.callback_url, self.callback_url)
        try:
            resp = await self._client.post(self.config.url, json=payload)
        except httpx.HTTPError as exc:
            return outcome_for_transport_error(exc)
        data = _json(resp)
        mapping = self.config.response
        status = scalar(get_path(data, mapping.status), MAX_CODE)
        error = scalar(get_path(data, mapping.error_code), MAX_CODE)
        if resp.is_success:
            # Taken, even if the answer lacks an id: sending again would duplicate it. Receipts and lookups
            # by reference still find it.
            ref = scalar(get_path(data, mapping.id), MAX_REF)
            return outcome_for_state(self._state(status), status_code(status, error, str(resp.status_code)), ref)
        return outcome_for_refusal(resp.status_code, status_code(None, error, f"http-{resp.status_code}"))

    async def lookup(self, provider_ref: str | None, reference: str) -> Receipt | None:
        template = self.config.status_url
        if not template or ("{provider_ref}" in template and not provider_ref):
            return None
        url = template.replace("{provider_ref}", quote(provider_ref or "", safe=""))
        url = url.replace("{reference}", quote(reference, safe=""))
        try:
            resp = await self._client.get(url)
        except httpx.HTTPError:
            return None
        if resp.status_code == 404 and "{reference}" in template:
            return NEVER_RECEIVED  # asked by our own id: the gateway never took this message
        data = _json(resp)
        if not resp.is_success or data is None:
            return None
        mapping = self.config.response
        status = scalar(get_path(data, mapping.status), MAX_CODE)
        state = self._state(status)
        ref = scalar(get_path(data, mapping.id), MAX_REF) or provider_ref
        if state is None or ref is None:
            return None  # it cannot tell
        error = scalar(get_path(data, mapping.error_code), MAX_CODE)
        echoed = scalar(get_path(data, mapping.reference), MAX_REF)
        return Receipt(ref, state, status_code(status, error, ""), echoed or reference)

    def receipt(self, body: bytes, headers: Mapping[str, str], url: str) -> Receipt:
        cb = self.config.callback
        if cb is None:
            raise BadCallback("this provider has no callbacks configured")
        if len(body) > MAX_CALLBACK_BYTES:
            raise BadCallback("callback body too large")
        given = header(headers, cb.header)
        if not given:
            raise BadCallback(f"missing {cb.header}")
        given = given.strip().removeprefix("sha256=")
        try:
            signature = bytes.fromhex(given) if cb.encoding == "hex" else base64.b64decode(given, validate=True)
        except (ValueError, binascii.Error):
            raise BadCallback("malformed signature") from None
        expected = hmac.new(cb.secret.get_secret_value().encode(), body, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            raise BadCallback("signature does not match")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise BadCallback("callback body is not JSON") from None
        ref = scalar(get_path(data, cb.id), MAX_REF)
        status = scalar(get_path(data, cb.status), MAX_CODE)
        if ref is None or status is None:
            raise BadCallback("callback lacks the message id or status")
        error = scalar(get_path(data, cb.error_code), MAX_CODE)
        # A status nobody mapped leaves the message in flight (sent never moves a settled one): its code is
        # kept, and a lookup or the next receipt settles it.
        state = self._state(status) or S.sent
        return Receipt(ref, state, status_code(status, error, ""), scalar(get_path(data, cb.reference), MAX_REF))

    async def aclose(self) -> None:
        await self._client.aclose()


def _json(resp: httpx.Response):
    try:
        return resp.json()
    except (ValueError, RecursionError):
        return None
