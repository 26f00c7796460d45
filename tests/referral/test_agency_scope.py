"""Agency tokens and what they cover, without a stack: the agency role and its agency_units claim (also
from `python -m runtime.auth token`), and a unit code covering the units whose parent chain leads to it."""
import jwt
import pytest

from runtime import auth
from runtime.auth import AuthSettings, Role, TokenVerifier, issue_token
from runtime.problems import Forbidden
from services.referral.directory.facts import directory_index
from services.referral.directory.generate import units
from services.referral.directory.model import UnitKind
from services.referral.referrals.scope import scope_of

SECRET = "a" * 40


@pytest.fixture(scope="module")
def directory():
    return directory_index(units())


def settings(**kw) -> AuthSettings:
    return AuthSettings(auth_mode="hs256", auth_hs256_secret=SECRET, **kw)


def test_an_agency_token_carries_its_units():
    s = settings()
    token = issue_token(s, sub="pol-1", roles=["agency"], agency_units=["police-province-92", "border-guard-22"])
    principal = TokenVerifier(s).verify_sync(token)
    assert principal.roles == {Role.AGENCY}
    assert principal.agency_units == {"police-province-92", "border-guard-22"}
    # another claim path (a provider's mapper), and a comma-separated string
    nested = settings(auth_agency_units_claim="hotline.units")
    token = issue_token(nested, sub="pol-2", roles=["agency"], agency_units=["police-province-31"])
    assert jwt.decode(token, SECRET, algorithms=["HS256"], audience="hotline111")["hotline"] == {
        "units": ["police-province-31"]}
    assert TokenVerifier(nested).verify_sync(token).agency_units == {"police-province-31"}
    raw = jwt.encode({"sub": "pol-3", "exp": 9999999999, "aud": "hotline111", "roles": ["agency"],
                      "agency_units": "police-commune-31135, peoples-committee-31135"}, SECRET, algorithm="HS256")
    assert TokenVerifier(s).verify_sync(raw).agency_units == {"police-commune-31135", "peoples-committee-31135"}
    # staff tokens name no units
    assert TokenVerifier(s).verify_sync(issue_token(s, sub="op-1", roles=["operator"])).agency_units == frozenset()


def test_the_cli_mints_agency_tokens(monkeypatch, capsys):
    monkeypatch.setenv("AUTH_MODE", "hs256")
    monkeypatch.setenv("AUTH_HS256_SECRET", SECRET)
    assert auth.main(["token", "--role", "agency", "--sub", "pol-1", "--agency-unit", "police-province-01",
                      "--agency-unit", "border-guard-22,coast-guard-region-1"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), SECRET, algorithms=["HS256"], audience="hotline111")
    assert claims["roles"] == ["agency"]
    assert claims["agency_units"] == ["border-guard-22", "coast-guard-region-1", "police-province-01"]
    with pytest.raises(SystemExit):
        auth.main(["token", "--role", "operator", "--agency-unit", "police-province-01"])
    assert "--agency-unit needs --role agency" in capsys.readouterr().err


def test_a_province_police_code_covers_its_commune_police_only(directory):
    covered = {u.code for u in directory.units_under(["police-province-92"])}
    communes = {u.code for u in directory.units if u.kind == UnitKind.police_commune and u.province_code == "92"}
    assert covered == {"police-province-92"} | communes and len(communes) > 10
    assert "peoples-committee-31135" not in covered and "police-province-31" not in covered


def test_codes_cover_themselves_unknown_codes_cover_nothing(directory):
    assert {u.code for u in directory.units_under(["peoples-committee-31135"])} == {"peoples-committee-31135"}
    assert directory.units_under(["no-such-unit"]) == []
    national = {u.kind for u in directory.units_under(["police-national"])}
    assert national == {UnitKind.police_national, UnitKind.police_province, UnitKind.police_commune}


def test_the_scope_is_unit_ids_and_a_token_without_units_is_refused(directory):
    principal = auth.Principal("pol-1", frozenset({Role.AGENCY}), agency_units=frozenset({"police-commune-31135"}))
    scope = scope_of(principal, directory)
    assert scope.subject == "pol-1"
    assert scope.unit_ids == {directory.by_code["police-commune-31135"].id}
    assert scope.covers(directory.by_code["police-commune-31135"].id)
    assert not scope.covers(directory.by_code["peoples-committee-31135"].id)
    with pytest.raises(Forbidden, match="agency_units"):
        scope_of(auth.Principal("pol-2", frozenset({Role.AGENCY})), directory)
