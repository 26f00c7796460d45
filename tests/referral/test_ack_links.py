"""Signed acknowledge links without a stack: they name one referral, expire, and refuse any alteration,
another secret, or another kind of token signed with the same secret."""
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
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
    claims = jwt.decode(token_of(url), SECRET, algorithms=["HS256"], audience="hotline111-referral-ack")
    assert claims == {"sub": str(referral), "aud": "hotline111-referral-ack", "exp": int(SOON.timestamp())}


def test_an_expired_link_is_refused():
    token = LINKS.token(uuid.uuid4(), datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(Unauthorized, match="expired") as refused:
        LINKS.verify(token)
    assert refused.value.status == 401


@pytest.mark.parametrize("alter", [
    lambda t: t[:-10] + ("A" if t[-10] != "A" else "B") + t[-9:],  # the signature
    lambda t: t.split(".")[0] + "." + jwt.utils.base64url_encode(
        b'{"sub":"' + str(uuid.uuid4()).encode() + b'","aud":"hotline111-referral-ack","exp":9999999999}').decode()
    + "." + t.split(".")[2],  # another referral under the old signature
    lambda t: "not-a-token",
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
