"""Signed acknowledge links without a stack: they name one referral, expire, fit an SMS, and refuse any
alteration, another secret, or another kind of token signed with the same secret."""
import base64
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from runtime.auth import AuthSettings, issue_token
from runtime.problems import Unauthorized
from services.referral.referrals.links import AckLinks, link_expiry
from services.referral.settings import ReferralSettings

SECRET = "s" * 40
LINKS = AckLinks(SECRET, "https://referral.example/")
SOON = datetime.now(UTC) + timedelta(hours=1)


def token_of(url: str) -> str:
    prefix = "https://referral.example/ack/"
    assert url.startswith(prefix)
    return url.removeprefix(prefix)


def test_a_link_names_its_referral_until_it_expires():
    referral = uuid.uuid4()
    url = LINKS.ack_link(referral, SOON)
    assert LINKS.verify(token_of(url)) == referral
    assert len(token_of(url)) == 50  # short enough for an SMS: a JWT took about 200 characters
    assert LINKS.verify(token_of(url), now=SOON - timedelta(seconds=1)) == referral
    with pytest.raises(Unauthorized, match="expired"):
        LINKS.verify(token_of(url), now=SOON)


def test_an_expired_link_is_refused():
    token = LINKS.token(uuid.uuid4(), datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(Unauthorized, match="expired") as refused:
        LINKS.verify(token)
    assert refused.value.status == 401


def _swap(token: str, at: int, data: bytes) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=="))
    raw[at:at + len(data)] = data
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


@pytest.mark.parametrize("alter", [
    lambda t: t[:-10] + ("A" if t[-10] != "A" else "B") + t[-9:],  # the signature
    lambda t: _swap(t, 1, uuid.uuid4().bytes),  # another referral under the old signature
    lambda t: _swap(t, 17, b"\xff\xff\xff\xff"),  # a later expiry under the old signature
    lambda t: _swap(t, 0, b"\x02"),  # another version
    lambda t: t + "A",
    lambda t: "not-a-token",
    lambda t: "!" * 50,
    lambda t: "",
    lambda t: "x" * 5000,
])
def test_an_altered_link_is_refused(alter):
    with pytest.raises(Unauthorized, match="not a valid acknowledge link|not an acknowledge link"):
        LINKS.verify(alter(LINKS.token(uuid.uuid4(), SOON)))


def test_another_secret_or_another_kind_of_token_is_refused():
    with pytest.raises(Unauthorized):
        AckLinks("t" * 40, "https://x").verify(LINKS.token(uuid.uuid4(), SOON))
    # a login token signed with the very same secret is not an acknowledge link (audience)
    login = issue_token(AuthSettings(auth_mode="hs256", auth_hs256_secret=SECRET), sub=str(uuid.uuid4()),
                        roles=["operator"])
    with pytest.raises(Unauthorized):
        LINKS.verify(login)
    none = jwt.encode({"sub": str(uuid.uuid4()), "aud": "hotline111-referral-ack", "exp": 9999999999}, None,
                      algorithm="none")
    with pytest.raises(Unauthorized):
        LINKS.verify(none)


@given(st.text(max_size=80))
def test_any_text_is_refused_with_a_401_and_nothing_else(text):
    with pytest.raises(Unauthorized):
        LINKS.verify(text)


def test_secrets_are_long_enough_and_optional_until_serving():
    with pytest.raises(ValueError, match="32 bytes"):
        AckLinks("short", "https://x")
    with pytest.raises(ValidationError, match="REFERRAL_LINK_SECRET must be at least 32 bytes"):
        ReferralSettings(referral_link_secret="short")
    assert ReferralSettings(referral_link_secret="").referral_link_secret is None  # migrate and seed need none
    assert ReferralSettings().referral_public_url == "http://127.0.0.1:8002"


def test_a_link_outlives_the_acknowledgement_deadline_by_the_escalation_window():
    due = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    assert link_expiry(due) == due + timedelta(hours=24)
