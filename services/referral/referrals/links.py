"""Signed one-click acknowledge links: `{public_url}/ack/{token}`.

The token is short, because it goes into SMS (a Vietnamese SMS part holds 67 characters): 50 base64url
characters for a version byte, the referral's 16 bytes, the expiry (4 bytes of Unix seconds) and a
128-bit HMAC-SHA256 tag over them. The key is derived from the link secret for this purpose alone, so no
other token of the platform passes for one. A JWT said the same in about 200 characters.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from runtime.problems import Unauthorized

MIN_SECRET_BYTES = 32  # a key at least as long as the hash output (as RFC 7518 3.2 asks of HS256)
AUDIENCE = "hotline111-referral-ack"
VERSION = 1
_BODY = struct.Struct(">B16sI")  # version, referral id, expiry (Unix seconds)
TAG_BYTES = 16
TOKEN_CHARS = 50  # base64url of 37 bytes, unpadded
# How long after its acknowledgement deadline a link still works: past the reminder and the escalation
# (12 h at most by default), so a late agency can still say it has the case.
LINK_GRACE = timedelta(hours=24)


def link_expiry(acknowledge_by: datetime) -> datetime:
    return acknowledge_by + LINK_GRACE


@dataclass(frozen=True)
class AckLinks:
    secret: str
    public_url: str
    _key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the link secret must be at least {MIN_SECRET_BYTES} bytes long")
        key = hmac.new(self.secret.encode(), AUDIENCE.encode(), hashlib.sha256).digest()
        object.__setattr__(self, "_key", key)

    def ack_link(self, referral_id: UUID, expires_at: datetime) -> str:
        """The URL that acknowledges `referral_id` until `expires_at` (timezone-aware)."""
        return f"{self.public_url.rstrip('/')}/ack/{self.token(referral_id, expires_at)}"

    def token(self, referral_id: UUID, expires_at: datetime) -> str:
        body = _BODY.pack(VERSION, referral_id.bytes, int(expires_at.timestamp()))
        return base64.urlsafe_b64encode(body + self._tag(body)).decode().rstrip("=")

    def verify(self, token: str, now: datetime | None = None) -> UUID:
        """The referral a token names; 401 when it is expired, tampered with or not an ack token."""
        if len(token) != TOKEN_CHARS:
            raise Unauthorized("This is not a valid acknowledge link.", error=None)
        try:
            raw = base64.urlsafe_b64decode(token + "==")
        except (binascii.Error, ValueError):
            raise Unauthorized("This is not a valid acknowledge link.", error=None) from None
        body, tag = raw[:_BODY.size], raw[_BODY.size:]
        if len(tag) != TAG_BYTES or not hmac.compare_digest(tag, self._tag(body)):
            raise Unauthorized("This is not a valid acknowledge link.", error=None)
        version, referral, expires = _BODY.unpack(body)
        if version != VERSION:
            raise Unauthorized("This is not a valid acknowledge link.", error=None)
        if (now or datetime.now(UTC)).timestamp() >= expires:
            raise Unauthorized("This acknowledge link has expired; acknowledge in the referral API or call "
                               "the hotline.", error=None)
        return UUID(bytes=referral)

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:TAG_BYTES]
