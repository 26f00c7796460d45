"""Signed one-click acknowledge links: `{public_url}/ack/{token}`, the token an HS256 JWT naming the
referral, with its own secret and audience so no other token of the platform passes for one."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import jwt

from runtime.problems import Unauthorized

MIN_SECRET_BYTES = 32  # RFC 7518 3.2: a key at least as long as the hash output
AUDIENCE = "hotline111-referral-ack"
# How long after its acknowledgement deadline a link still works: past the reminder and the escalation
# (12 h at most by default), so a late agency can still say it has the case.
LINK_GRACE = timedelta(hours=24)


def link_expiry(acknowledge_by: datetime) -> datetime:
    return acknowledge_by + LINK_GRACE


@dataclass(frozen=True)
class AckLinks:
    secret: str
    public_url: str

    def __post_init__(self) -> None:
        if len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the link secret must be at least {MIN_SECRET_BYTES} bytes long")

    def ack_link(self, referral_id: UUID, expires_at: datetime) -> str:
        """The URL that acknowledges `referral_id` until `expires_at` (timezone-aware)."""
        return f"{self.public_url.rstrip('/')}/ack/{self.token(referral_id, expires_at)}"

    def token(self, referral_id: UUID, expires_at: datetime) -> str:
        claims = {"sub": str(referral_id), "aud": AUDIENCE, "exp": int(expires_at.timestamp())}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def verify(self, token: str) -> UUID:
        """The referral a token names; 401 when it is expired, tampered with or not an ack token."""
        if len(token) > 1024:
            raise Unauthorized("This is not an acknowledge link.", error=None)
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], audience=AUDIENCE,
                                options={"require": ["sub", "aud", "exp"]})
            return UUID(claims["sub"])
        except jwt.ExpiredSignatureError:
            raise Unauthorized("This acknowledge link has expired; acknowledge in the referral API or call "
                               "the hotline.", error=None) from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise Unauthorized("This is not a valid acknowledge link.", error=None) from None
