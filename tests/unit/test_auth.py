"""Bearer-token authentication (runtime/auth.py): HS256 in development, RS256/ES256 from an OIDC
provider's JWKS in production, roles from a (possibly nested) claim, and RFC 9457 problems with
WWW-Authenticate for 401 and 403. The JWKS is served by a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import os
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from runtime import auth
from runtime.auth import AuthSettings, AuthUnavailable, Principal, Role, TokenVerifier, issue_token, require
from runtime.problems import Unauthorized, install_problem_handlers

SECRET = secrets.token_urlsafe(32)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """The settings read AUTH_* from the environment: start every test from none."""
    for name in list(os.environ):
        if name.startswith("AUTH_"):
            monkeypatch.delenv(name)


def hs(**kw) -> AuthSettings:
    return AuthSettings(auth_hs256_secret=SECRET, **kw)


def claims(**kw) -> dict:
    now = int(time.time())
    base = {"sub": "op-1", "iat": now, "exp": now + 600, "aud": "hotline111", "roles": ["operator"]}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def hs_token(secret: str = SECRET, **kw) -> str:
    return jwt.encode(claims(**kw), secret, algorithm="HS256")


def rejected(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthorized) as caught:
        verifier.verify_sync(token)
    return caught.value.detail


# ------------------------------------------------------------------------------ settings
def test_hs256_mode_has_no_default_secret():
    with pytest.raises(ValidationError, match="AUTH_HS256_SECRET is required"):
        AuthSettings()
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        AuthSettings(auth_hs256_secret="too-short")
    with pytest.raises(SystemExit, match="AUTH_HS256_SECRET is required"):
        auth.load_auth_settings()


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("AUTH_HS256_SECRET", SECRET)
    monkeypatch.setenv("AUTH_ISSUER", "")
    monkeypatch.setenv("AUTH_ROLES_CLAIM", "realm_access.roles")
    s = AuthSettings()
    assert s.auth_mode == "hs256" and s.auth_audience == "hotline111" and s.auth_leeway_s == 30
    assert s.auth_issuer is None and s.auth_roles_claim == "realm_access.roles"
    assert SECRET not in repr(s)
    assert AuthSettings.from_env({"AUTH_HS256_SECRET": SECRET, "AUTH_AUDIENCE": "x"}).auth_audience == "x"


def test_jwks_mode_needs_a_url():
    with pytest.raises(ValidationError, match="AUTH_JWKS_URL is required"):
        AuthSettings(auth_mode="jwks")
    AuthSettings(auth_mode="jwks", auth_jwks_url="https://id.example/jwks")  # no secret needed


# ------------------------------------------------------------------------------ HS256
def test_hs256_happy_path():
    token = hs_token(roles=["operator", "supervisor"], name="Operator 1")
    principal = TokenVerifier(hs()).verify_sync(token)
    assert principal == Principal("op-1", frozenset({Role.OPERATOR, Role.SUPERVISOR}), "Operator 1")
    assert principal.has(Role.SUPERVISOR) and principal.has("operator") and not principal.has(Role.AUDITOR)


async def test_verify_is_async_too():
    assert (await TokenVerifier(hs()).verify(hs_token())).subject == "op-1"


def test_expired_and_leeway():
    v = TokenVerifier(hs(auth_leeway_s=30))
    now = int(time.time())
    assert "expired" in rejected(v, hs_token(iat=now - 600, exp=now - 31))
    assert v.verify_sync(hs_token(iat=now - 600, exp=now - 20)).subject == "op-1"  # within leeway
    assert "not valid yet" in rejected(v, hs_token(nbf=now + 120))


def test_a_verified_token_is_remembered_but_never_past_its_expiry():
    v = TokenVerifier(hs(auth_leeway_s=0))
    token = hs_token(exp=int(time.time()) + 1)
    assert v.verify_sync(token).subject == "op-1"
    assert v.verify_sync(token).subject == "op-1"  # from the cache
    time.sleep(1.6)
    assert "expired" in rejected(v, token)
    # A cached token is only ever the same string: one changed character is checked in full.
    good = hs_token()
    assert v.verify_sync(good).subject == "op-1"
    assert rejected(v, good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1])


def test_wrong_signature():
    assert "signature" in rejected(TokenVerifier(hs()), hs_token(secret=secrets.token_urlsafe(32)))
    token = hs_token()
    head, body, sig = token.split(".")
    tampered = base64.urlsafe_b64encode(json.dumps(claims(roles=["supervisor"])).encode()).rstrip(b"=").decode()
    assert "signature" in rejected(TokenVerifier(hs()), f"{head}.{tampered}.{sig}")


def test_audience_and_issuer():
    v = TokenVerifier(hs(auth_issuer="https://id.example/realms/hotline111"))
    good = dict(iss="https://id.example/realms/hotline111")
    assert v.verify_sync(hs_token(**good)).subject == "op-1"
    assert "audience" in rejected(v, hs_token(aud="another-app", **good))
    assert "'aud'" in rejected(v, hs_token(aud=None, **good))
    assert "issuer" in rejected(v, hs_token(iss="https://evil.example/"))
    assert "'iss'" in rejected(v, hs_token())
    # aud may be a list that contains ours; an empty AUTH_AUDIENCE turns the check off.
    assert v.verify_sync(hs_token(aud=["account", "hotline111"], **good)).subject == "op-1"
    assert TokenVerifier(hs(auth_audience="")).verify_sync(hs_token(aud=None)).subject == "op-1"


def test_required_claims():
    v = TokenVerifier(hs())
    assert "'sub'" in rejected(v, hs_token(sub=None))
    assert "'sub'" in rejected(v, hs_token(sub="  "))
    assert "invalid" in rejected(v, hs_token(sub=42))
    assert "'exp'" in rejected(v, hs_token(exp=None))


def test_alg_none_is_refused():
    unsigned = jwt.encode(claims(), None, algorithm="none")
    assert "algorithm" in rejected(TokenVerifier(hs()), unsigned)
    assert "algorithm" in rejected(TokenVerifier(hs()), unsigned + "c2ln")  # with a bogus signature


def test_hs256_mode_refuses_asymmetric_tokens():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), key, algorithm="RS256")
    assert "algorithm" in rejected(TokenVerifier(hs()), token)


def test_roles_claim_nested_and_unknown_roles_ignored():
    v = TokenVerifier(hs(auth_roles_claim="realm_access.roles"))
    token = hs_token(roles=["supervisor"], realm_access={"roles": ["auditor", "offline_access", "root", 7]})
    assert v.verify_sync(token).roles == {Role.AUDITOR}
    assert TokenVerifier(hs()).verify_sync(hs_token(roles=["root", "operator", None])).roles == {Role.OPERATOR}
    assert TokenVerifier(hs()).verify_sync(hs_token(roles=["admin"])).roles == {Role.ADMIN}  # directory admins
    assert TokenVerifier(hs()).verify_sync(hs_token(roles="operator auditor")).roles == {Role.OPERATOR, Role.AUDITOR}
    assert TokenVerifier(hs()).verify_sync(hs_token(roles=None)).roles == frozenset()
    assert v.verify_sync(hs_token(realm_access="operator-ish")).roles == frozenset()
    # A namespaced claim with dots in its name is taken as it is.
    ns = TokenVerifier(hs(auth_roles_claim="https://hotline111.example/roles"))
    assert ns.verify_sync(hs_token(**{"https://hotline111.example/roles": ["supervisor"]})).roles == {Role.SUPERVISOR}


def test_issue_token_round_trips_with_nested_claim_issuer_and_ttl():
    s = hs(auth_roles_claim="realm_access.roles", auth_issuer="https://id.example/")
    token = issue_token(s, sub="sup-1", roles=[Role.SUPERVISOR, "auditor"], name="Sup", ttl_s=60)
    assert TokenVerifier(s).verify_sync(token) == Principal("sup-1", frozenset({Role.SUPERVISOR, Role.AUDITOR}), "Sup")
    body = jwt.decode(token, options={"verify_signature": False})
    assert body["exp"] - body["iat"] == 60 and body["realm_access"] == {"roles": ["auditor", "supervisor"]}
    expired = issue_token(s, sub="x", roles=[], ttl_s=1, now=time.time() - 3600)
    assert "expired" in rejected(TokenVerifier(s), expired)
    with pytest.raises(ValueError):
        issue_token(s, sub="x", roles=["root"])


def test_cli_prints_a_token(monkeypatch, capsys):
    monkeypatch.setenv("AUTH_HS256_SECRET", SECRET)
    assert auth.main(["token", "--role", "operator", "--role", "supervisor", "--sub", "op-1",
                      "--name", "Operator 1", "--ttl", "12h"]) == 0
    token = capsys.readouterr().out.strip()
    principal = TokenVerifier(AuthSettings()).verify_sync(token)
    assert principal == Principal("op-1", frozenset({Role.OPERATOR, Role.SUPERVISOR}), "Operator 1")
    body = jwt.decode(token, options={"verify_signature": False})
    assert body["exp"] - body["iat"] == 12 * 3600

    monkeypatch.setenv("AUTH_MODE", "jwks")
    monkeypatch.setenv("AUTH_JWKS_URL", "https://id.example/jwks")
    assert auth.main(["token", "--role", "operator"]) == 2
    assert "OIDC" in capsys.readouterr().err


def test_parse_ttl():
    assert [auth.parse_ttl(t) for t in ("90", "90s", "30m", "12h", "2d")] == [90, 90, 1800, 43200, 172800]
    for bad in ("", "0", "-1h", "12x", "h"):
        with pytest.raises(argparse.ArgumentTypeError):
            auth.parse_ttl(bad)


# ------------------------------------------------------------------------------ JWKS
class JwksServer:
    """A JWKS endpoint on 127.0.0.1 whose keys a test can change; counts the GETs."""

    def __init__(self):
        self.keys: list[dict] = []
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                owner.requests += 1
                body = json.dumps({"keys": owner.keys}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/realms/hotline111/protocol/openid-connect/certs"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks():
    server = JwksServer()
    yield server
    server.stop()


class SigningKey:
    def __init__(self, kid: str, kind: str = "RSA"):
        self.kid = kid
        if kind == "RSA":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg, algo = "RS256", jwt.algorithms.RSAAlgorithm
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.alg, algo = "ES256", jwt.algorithms.ECAlgorithm
        self.jwk = {**algo.to_jwk(self.private.public_key(), as_dict=True), "kid": kid, "use": "sig", "alg": self.alg}

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def token(self, kid: str | None = "same", alg: str | None = None, **kw) -> str:
        headers = {} if kid is None else {"kid": self.kid if kid == "same" else kid}
        return jwt.encode(claims(**kw), self.private, algorithm=alg or self.alg, headers=headers)


ISSUER = "https://id.example/realms/hotline111"


def jwks_settings(server: JwksServer, **kw) -> AuthSettings:
    base = dict(auth_mode="jwks", auth_jwks_url=server.url, auth_issuer=ISSUER,
                auth_roles_claim="realm_access.roles", auth_jwks_cooldown_s=0)
    return AuthSettings(**{**base, **kw})


def kc(**kw) -> dict:
    """Claims shaped like Keycloak's."""
    return {"iss": ISSUER, "roles": None, "realm_access": {"roles": ["supervisor", "default-roles-hotline111"]},
            "preferred_username": "sup.one", **kw}


async def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token)
    return caught.value.detail


async def test_rs256_and_es256_via_jwks(jwks):
    rsa_key, ec_key = SigningKey("rsa-1"), SigningKey("ec-1", "EC")
    jwks.keys = [rsa_key.jwk, ec_key.jwk]
    v = TokenVerifier(jwks_settings(jwks))
    principal = await v.verify(rsa_key.token(**kc()))
    assert principal == Principal("op-1", frozenset({Role.SUPERVISOR}), "sup.one")
    assert (await v.verify(ec_key.token(**kc()))).roles == {Role.SUPERVISOR}
    assert jwks.requests == 1, "the key set is cached"
    for _ in range(5):
        await v.verify(rsa_key.token(**kc()))
    assert jwks.requests == 1
    assert "issuer" in await refused(v, rsa_key.token(**kc(iss="https://other.example/")))
    assert "expired" in await refused(v, rsa_key.token(**kc(exp=int(time.time()) - 120)))
    # Signed by a key with the right kid but not the published key.
    impostor = SigningKey("rsa-1")
    assert "signature" in await refused(v, impostor.token(**kc()))


async def test_jwks_mode_refuses_hs256_none_and_key_confusion(jwks):
    key = SigningKey("rsa-1")
    jwks.keys = [key.jwk]
    v = TokenVerifier(jwks_settings(jwks))
    # HS256 signed with the public key (classic RS256 -> HS256 confusion), with and without the kid.
    pem = key.public_pem
    forged = _hmac_token(pem, {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(**kc()))
    assert "algorithm" in await refused(v, forged)
    assert "algorithm" in await refused(v, jwt.encode(claims(**kc()), SECRET, algorithm="HS256"))
    assert "algorithm" in await refused(v, jwt.encode(claims(**kc()), None, algorithm="none"))
    # An algorithm the key is not for: RS512 is not accepted, and ES256 with an RSA kid fails.
    assert "algorithm" in await refused(v, key.token(alg="RS512", **kc()))
    assert jwks.requests == 0, "foreign algorithms are refused before any key lookup"
    ec_key = SigningKey("rsa-1", "EC")  # an EC token claiming the RSA key's kid
    assert "algorithm" in await refused(v, ec_key.token(**kc()))
    assert "key id" in await refused(v, key.token(kid=None, **kc()))


def _hmac_token(secret: bytes, header: dict, payload: dict) -> str:
    """An HS256 JWT built by hand: PyJWT refuses to use a PEM key as an HMAC secret."""
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


async def test_key_rotation_fetches_the_new_kid_and_drops_the_old(jwks):
    old, new = SigningKey("2025-01"), SigningKey("2025-02")
    jwks.keys = [old.jwk]
    v = TokenVerifier(jwks_settings(jwks, auth_jwks_lifespan_s=0.5))
    assert (await v.verify(old.token(**kc()))).subject == "op-1"
    assert jwks.requests == 1

    jwks.keys = [new.jwk, old.jwk]  # the provider publishes the next key ...
    assert (await v.verify(new.token(**kc()))).subject == "op-1"
    assert jwks.requests == 2, "an unknown kid refetches the key set"
    assert (await v.verify(old.token(**kc()))).subject == "op-1"
    assert jwks.requests == 2

    jwks.keys = [new.jwk]  # ... and withdraws the old one: trusted no longer than the lifespan
    time.sleep(0.6)
    assert "unknown key" in await refused(v, old.token(**kc()))
    assert (await v.verify(new.token(**kc()))).subject == "op-1"


async def test_unknown_kids_do_not_hammer_the_provider(jwks):
    key = SigningKey("k1")
    jwks.keys = [key.jwk]
    v = TokenVerifier(jwks_settings(jwks, auth_jwks_cooldown_s=60))
    await v.verify(key.token(**kc()))
    for i in range(10):
        assert "unknown key" in await refused(v, key.token(kid=f"random-{i}", **kc()))
    assert jwks.requests == 1


async def test_provider_down(jwks):
    key = SigningKey("k1")
    jwks.keys = [key.jwk]
    v = TokenVerifier(jwks_settings(jwks, auth_jwks_lifespan_s=0.2))
    await v.verify(key.token(**kc()))
    jwks.stop()
    time.sleep(0.3)
    # A key already in use keeps working while the provider is unreachable ...
    assert (await v.verify(key.token(**kc()))).subject == "op-1"
    # ... but nothing else can be checked: 503, not 401 (the token may well be fine).
    with pytest.raises(AuthUnavailable):
        await v.verify(SigningKey("k2").token(**kc()))


# ------------------------------------------------------------------------------ FastAPI
def make_app(settings: AuthSettings) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    auth.install_auth(app, settings)

    @app.get("/me")
    async def me(principal: Principal = Depends(auth.authenticated)):
        return {"sub": principal.subject, "roles": sorted(principal.roles), "name": principal.name}

    @app.post("/merge")
    async def merge(principal: Principal = Depends(require(Role.SUPERVISOR))):
        return {"merged_by": principal.subject}

    @app.get("/audit")
    async def audit(principal: Principal = Depends(require("auditor", Role.SUPERVISOR))):
        return {"ok": True}

    return app


@pytest.fixture
async def client():
    app = make_app(hs())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def bearer(*roles: str, **kw) -> dict:
    return {"Authorization": f"Bearer {issue_token(hs(), sub='u-1', roles=roles, **kw)}"}


def assert_problem(r: httpx.Response, status: int, kind: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and body["type"] == f"https://hotline111.example/problems/{kind}"
    assert body["instance"] == r.request.url.path
    return body


async def test_missing_token_is_401_with_challenge(client):
    r = await client.get("/me")
    body = assert_problem(r, 401, "unauthorized")
    assert body["title"] == "Unauthorized" and "bearer token is required" in body["detail"]
    assert r.headers["www-authenticate"] == 'Bearer realm="hotline111"'
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "token"):
        r = await client.get("/me", headers={"Authorization": header})
        assert_problem(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")


async def test_invalid_token_is_401_and_never_echoed(client, capfd):
    token = hs_token(secret=secrets.token_urlsafe(32))
    r = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == 'Bearer realm="hotline111", error="invalid_token"'
    assert token not in r.text
    out, err = capfd.readouterr()
    assert token not in out + err and token.split(".")[2] not in out + err


async def test_roles(client):
    r = await client.get("/me", headers=bearer("operator", name="Op"))
    assert r.status_code == 200 and r.json() == {"sub": "u-1", "roles": ["operator"], "name": "Op"}
    r = await client.get("/me", headers=bearer())
    assert r.status_code == 200 and r.json()["roles"] == []  # authenticated, no roles

    body = assert_problem(await client.post("/merge", headers=bearer("operator", "auditor")), 403, "forbidden")
    assert body["title"] == "Forbidden" and "supervisor" in body["detail"]
    assert "www-authenticate" not in (await client.post("/merge", headers=bearer("operator"))).headers
    assert (await client.post("/merge", headers=bearer("supervisor"))).json() == {"merged_by": "u-1"}
    assert_problem(await client.post("/merge"), 401, "unauthorized")  # 401 before 403

    assert (await client.get("/audit", headers=bearer("auditor"))).status_code == 200
    assert (await client.get("/audit", headers=bearer("supervisor"))).status_code == 200
    assert_problem(await client.get("/audit", headers=bearer("operator")), 403, "forbidden")


async def test_jwks_outage_is_503_problem(jwks):
    key = SigningKey("k1")
    url = jwks.url
    jwks.stop()
    app = make_app(AuthSettings(auth_mode="jwks", auth_jwks_url=url, auth_jwks_timeout_s=2))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/me", headers={"Authorization": f"Bearer {key.token()}"})
    assert_problem(r, 503, "auth-unavailable")


async def test_require_checks_its_roles_and_install_is_needed():
    with pytest.raises(ValueError):
        require("root")
    with pytest.raises(ValueError):
        require()
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/me")
    async def me(principal: Principal = Depends(auth.authenticated)):
        return {}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/me", headers=bearer("operator"))).status_code == 500  # install_auth forgotten


def test_openapi_declares_bearer_security():
    spec = make_app(hs()).openapi()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer" and schemes["HTTPBearer"]["bearerFormat"] == "JWT"
    assert spec["paths"]["/merge"]["post"]["security"] == [{"HTTPBearer": []}]


# ------------------------------------------------------------------------------ fuzzing
JUNK_SEGMENT = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()),
    st.dictionaries(st.sampled_from(["alg", "typ", "kid", "crit", "b64", "sub", "exp", "aud", "roles"]),
                    st.one_of(st.none(), st.integers(), st.text(max_size=10),
                              st.sampled_from(["none", "HS256", "RS256", "ES256", "HS512"]),
                              st.lists(st.text(max_size=5), max_size=3)), max_size=5)
    .map(lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()),
)
JUNK_TOKENS = st.one_of(st.text(max_size=300), st.lists(JUNK_SEGMENT, min_size=1, max_size=4).map(".".join))


@settings(max_examples=300, deadline=None)
@given(JUNK_TOKENS)
def test_random_tokens_are_only_ever_unauthorized(token):
    with pytest.raises(Unauthorized):
        TokenVerifier(hs()).verify_sync(token)


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)


@functools.cache
def fuzz_app() -> FastAPI:
    return make_app(AuthSettings(auth_mode="hs256", auth_hs256_secret=SECRET))


async def _get_me(token: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fuzz_app()), base_url="http://t") as c:
        return await c.get("/me", headers={"Authorization": f"Bearer {token}"})


@settings(max_examples=200, deadline=None)
@given(st.one_of(HEADER_TEXT, JUNK_TOKENS.filter(lambda t: t.isascii() and t.isprintable())))
def test_random_bearer_headers_get_401_problems(token):
    r = asyncio.run(_get_me(token))  # a sync test (Hypothesis) runs outside pytest's event loop
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith('Bearer realm="hotline111"')
