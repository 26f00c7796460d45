"""Bearer-token authentication and roles for the HTTP APIs.

Two modes (AUTH_MODE):

* ``hs256`` (development, tests): tokens are HS256 JWTs signed with AUTH_HS256_SECRET. `make run`
  keeps a secret in .data/auth.secret and prints tokens; mint more with
  ``python -m runtime.auth token --role operator --sub op-1``, or for an agency
  ``python -m runtime.auth token --role agency --sub pol-1 --agency-unit police-province-01``, or for a
  directory administrator ``python -m runtime.auth token --role admin --sub dir-1``.
* ``jwks`` (production): tokens come from an OIDC provider and are RS256 or ES256 JWTs, verified
  with the provider's published keys (AUTH_JWKS_URL). Keys are cached for AUTH_JWKS_LIFESPAN_S;
  a token with an unknown ``kid`` triggers at most one refetch per AUTH_JWKS_COOLDOWN_S (key
  rotation without a restart, yet random kids cannot hammer the provider).

A verified token is remembered (never past its ``exp``; for 60 s at most, and in jwks mode no longer
than AUTH_JWKS_LIFESPAN_S), so a withdrawn key's tokens are refused within twice that lifespan.

Every token needs ``sub`` and ``exp``; ``aud`` and ``iss`` are checked when AUTH_AUDIENCE and
AUTH_ISSUER are set. Roles come from AUTH_ROLES_CLAIM, a claim name or a dotted path into nested
claims (Keycloak: ``realm_access.roles``); role names the platform does not know are ignored. An
agency's token also names the directory units it speaks for, in AUTH_AGENCY_UNITS_CLAIM (a list of
unit codes, or one comma-separated string).

In an app::

    install_auth(app, AuthSettings())                     # once, at app creation
    @router.post("/cases")
    async def report(principal: Principal = Depends(require(Role.OPERATOR, Role.SUPERVISOR))): ...

Failures are RFC 9457 problems: 401 (with ``WWW-Authenticate: Bearer``) for a missing or invalid
token, 403 when the principal has none of the roles. Tokens are never logged. A caller refused is refused
before anything about its input is said, even for a body that is not JSON (see `refusal`).
"""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from cachetools import TLRUCache
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.logging import get_logger
from runtime.problems import DomainError, Forbidden, Unauthorized

__all__ = ["AuthMode", "AuthSettings", "AuthUnavailable", "Principal", "Role", "TokenVerifier", "authenticated",
           "install_auth", "issue_token", "refusal", "require"]

log = get_logger(__name__)

MIN_HS256_SECRET_BYTES = 32  # RFC 7518 3.2: a key at least as long as the hash output
MAX_TOKEN_CHARS = 16_384  # far above any real token; refuse before parsing anything larger
VERIFIED_TTL_S = 60  # a verified token is trusted this long without a second check, never past its exp
HS256_ALGORITHMS = ("HS256",)
JWKS_ALGORITHMS = ("RS256", "ES256")


class AuthMode(StrEnum):
    HS256 = "hs256"
    JWKS = "jwks"


class Role(StrEnum):
    OPERATOR = "operator"  # takes calls, records and updates cases
    SUPERVISOR = "supervisor"  # merges, reopens, blocks flags, sees all cases
    AUDITOR = "auditor"  # reads the audit log
    AGENCY = "agency"  # staff of agency units: their units' referrals only (claim agency_units)
    ADMIN = "admin"  # directory administrators: create, change, import and verify agency units
    ANALYST = "analyst"  # reads reporting's figures (small cells suppressed); with admin, may lift suppression


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    auth_mode: AuthMode = AuthMode.HS256
    auth_hs256_secret: SecretStr | None = None
    auth_jwks_url: str | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = "hotline111"  # empty: do not check aud
    auth_roles_claim: str = "roles"
    auth_agency_units_claim: str = "agency_units"  # claim or dotted path: the unit codes an agency acts for
    auth_leeway_s: float = Field(30, ge=0)
    auth_jwks_lifespan_s: float = Field(300, gt=0)  # how long fetched keys are trusted without a refetch
    auth_jwks_cooldown_s: float = Field(30, ge=0)  # minimum time between refetches for an unknown kid
    auth_jwks_timeout_s: float = Field(5, gt=0)

    @model_validator(mode="after")
    def _check_mode(self) -> AuthSettings:
        # Empty strings (e.g. `AUTH_ISSUER=` in an env file) mean "not set".
        for name in ("auth_jwks_url", "auth_issuer", "auth_audience"):
            if not (getattr(self, name) or "").strip():
                setattr(self, name, None)
        if self.auth_mode is AuthMode.HS256:
            secret = self.auth_hs256_secret.get_secret_value() if self.auth_hs256_secret else ""
            if not secret:
                raise ValueError(
                    "AUTH_HS256_SECRET is required when AUTH_MODE=hs256 (there is no default secret). "
                    "`make run` creates one in .data/auth.secret; otherwise generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, "
                    "or set AUTH_MODE=jwks with AUTH_JWKS_URL for an OIDC provider."
                )
            if len(secret.encode()) < MIN_HS256_SECRET_BYTES:
                raise ValueError(f"AUTH_HS256_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes long")
        elif not self.auth_jwks_url:
            raise ValueError("AUTH_JWKS_URL is required when AUTH_MODE=jwks (the OIDC provider's jwks_uri)")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> AuthSettings:
        """Settings from an explicit environment mapping (e.g. the one a child process gets)."""
        names = {f"AUTH_{name[len('auth_'):].upper()}": name for name in cls.model_fields}
        values: dict[str, Any] = {names[k]: v for k, v in env.items() if k in names}
        values.update(overrides)
        return cls(**values)


def load_auth_settings() -> AuthSettings:
    """AuthSettings from the environment; a misconfiguration exits with a plain message."""
    try:
        return AuthSettings()
    except ValidationError as exc:
        problems = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        raise SystemExit(f"auth configuration: {problems}") from None


class AuthUnavailable(DomainError):
    """The provider's keys cannot be fetched: the token may be fine, so not a 401."""

    status = 503
    kind = "auth-unavailable"


@dataclass(frozen=True)
class Principal:
    """Who made the request: the token's subject, its known roles, display name and, for an agency, the
    codes of the directory units it acts for."""

    subject: str
    roles: frozenset[Role]
    name: str | None = None
    agency_units: frozenset[str] = frozenset()

    def has(self, role: Role | str) -> bool:
        return role in self.roles  # Role is a StrEnum: "supervisor" == Role.SUPERVISOR


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by exact name, else by dotted path ("realm_access.roles")."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _names(raw: Any) -> list[str]:
    """A claim holding names: a list, or one string separated by commas or spaces."""
    if isinstance(raw, str):
        return [n for n in re.split(r"[\s,]+", raw) if n]
    if isinstance(raw, (list, tuple)):
        return [n for n in raw if isinstance(n, str) and n]
    return []


def roles_from_claims(claims: Mapping[str, Any], path: str) -> frozenset[Role]:
    known = {r.value for r in Role}
    return frozenset(Role(n) for n in _names(_claim(claims, path)) if n in known)


def agency_units_from_claims(claims: Mapping[str, Any], path: str) -> frozenset[str]:
    return frozenset(n for n in _names(_claim(claims, path)) if len(n) <= 64)


_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "The token has expired."),
    (jwt.ImmatureSignatureError, "The token is not valid yet."),
    (jwt.InvalidAudienceError, "The token is not meant for this service (audience)."),
    (jwt.InvalidIssuerError, "The token was issued by an untrusted issuer."),
    (jwt.MissingRequiredClaimError, "The token lacks a required claim."),
    (jwt.InvalidSignatureError, "The token's signature is invalid."),
    (jwt.InvalidAlgorithmError, "The token's algorithm is not accepted."),
)


def _invalid(exc: Exception) -> Unauthorized:
    detail = next((text for cls, text in _REASONS if isinstance(exc, cls)), "The token is invalid.")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        detail = f"The token lacks the required claim {exc.claim!r}."
    log.info("auth_rejected", reason=type(exc).__name__)  # never the token itself
    return Unauthorized(detail)


class TokenVerifier:
    """Verifies bearer tokens for one app, per AuthSettings. Thread- and task-safe."""

    def __init__(self, settings: AuthSettings):
        self.settings = settings
        self.algorithms = list(HS256_ALGORITHMS if settings.auth_mode is AuthMode.HS256 else JWKS_ALGORITHMS)
        self._jwks: jwt.PyJWKClient | None = None
        self._last_good: dict[str, jwt.PyJWK] = {}  # kid -> key, served only while the provider is down
        # token -> (Principal, exp); an entry lives until the token expires, VERIFIED_TTL_S at most
        # In jwks mode no longer than the key set is cached, so a withdrawn key's tokens are refused
        # within twice AUTH_JWKS_LIFESPAN_S at most.
        ttl = VERIFIED_TTL_S if settings.auth_mode is AuthMode.HS256 else min(VERIFIED_TTL_S,
                                                                           settings.auth_jwks_lifespan_s)
        self._verified: TLRUCache = TLRUCache(
            maxsize=4096, ttu=lambda _token, hit, now: min(hit[1], now + ttl), timer=time.time)
        self._verified_lock = threading.Lock()
        if settings.auth_mode is AuthMode.JWKS:
            # cache_keys stays off: its LRU never expires, so a key the provider has withdrawn would
            # be trusted until restart. The JWK Set cache (lifespan) bounds that to AUTH_JWKS_LIFESPAN_S.
            self._jwks = jwt.PyJWKClient(
                settings.auth_jwks_url, cache_jwk_set=True, lifespan=settings.auth_jwks_lifespan_s,
                cooldown_duration=settings.auth_jwks_cooldown_s, timeout=settings.auth_jwks_timeout_s,
                headers={"User-Agent": "hotline111"},
            )

    async def verify(self, token: str) -> Principal:
        """The token's Principal; raises Unauthorized (401) or AuthUnavailable (503)."""
        if (known := self._known(token)) is not None:
            return known
        header = self._header(token)
        key: Any
        if self._jwks is None:
            key = self.settings.auth_hs256_secret.get_secret_value()
        else:
            key = await self._signing_key(header)
        return self._decode(token, key)

    def verify_sync(self, token: str) -> Principal:
        """verify() for HS256 mode outside an event loop (jwks mode: use verify)."""
        if self._jwks is not None:
            raise RuntimeError("verify_sync is for hs256 mode; jwks mode may fetch keys, use verify()")
        if (known := self._known(token)) is not None:
            return known
        self._header(token)
        return self._decode(token, self.settings.auth_hs256_secret.get_secret_value())

    def _known(self, token: str) -> Principal | None:
        """An operator's console sends the same token with every request: a token verified in the
        last VERIFIED_TTL_S (and not expired since) is not parsed and checked again."""
        with self._verified_lock:
            hit = self._verified.get(token)
        return None if hit is None else hit[0]

    # -- steps
    def _header(self, token: str) -> dict[str, Any]:
        if not token or len(token) > MAX_TOKEN_CHARS:
            log.info("auth_rejected", reason="size")
            raise Unauthorized("The token is malformed.")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError, UnicodeError):
            log.info("auth_rejected", reason="malformed")
            raise Unauthorized("The token is malformed.") from None
        # Refuse a foreign algorithm ("none", HS256 in jwks mode) before any key lookup.
        if header.get("alg") not in self.algorithms:
            log.info("auth_rejected", reason="algorithm")
            raise Unauthorized("The token's algorithm is not accepted.")
        return header

    async def _signing_key(self, header: Mapping[str, Any]) -> jwt.PyJWK:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            log.info("auth_rejected", reason="no_kid")
            raise Unauthorized("The token has no key id (kid).")
        try:
            # PyJWKClient is synchronous (urllib) and may fetch: keep it off the event loop.
            key = await asyncio.to_thread(self._jwks.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as exc:
            stale = self._last_good.get(kid)
            if stale is not None:
                log.warning("auth_jwks_unreachable_using_cached_key", error=type(exc).__name__)
                return stale
            log.error("auth_jwks_unreachable", error=str(exc))
            raise AuthUnavailable("The identity provider's keys cannot be fetched; try again shortly.") from None
        except jwt.PyJWKClientError:
            log.info("auth_rejected", reason="unknown_kid")
            raise Unauthorized("The token was signed with an unknown key.") from None
        except jwt.PyJWTError as exc:  # a JWK Set the provider serves but we cannot read
            log.error("auth_jwks_invalid", error=str(exc))
            raise AuthUnavailable("The identity provider's keys cannot be read; try again shortly.") from None
        self._last_good[kid] = key
        return key

    def _decode(self, token: str, key: Any) -> Principal:
        principal, expires = self._claims(token, key)
        with self._verified_lock:
            self._verified[token] = (principal, expires)
        return principal

    def _claims(self, token: str, key: Any) -> tuple[Principal, float]:
        s = self.settings
        required = ["exp", "sub"] + (["aud"] if s.auth_audience else []) + (["iss"] if s.auth_issuer else [])
        try:
            claims = jwt.decode(
                token, key, algorithms=self.algorithms, audience=s.auth_audience, issuer=s.auth_issuer,
                leeway=s.auth_leeway_s,
                options={"require": required, "verify_aud": bool(s.auth_audience), "verify_sub": True,
                         "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            raise _invalid(exc) from None
        except (ValueError, TypeError, UnicodeError) as exc:
            raise _invalid(jwt.DecodeError(type(exc).__name__)) from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise _invalid(jwt.MissingRequiredClaimError("sub"))
        name = claims.get("name") or claims.get("preferred_username")
        return Principal(subject, roles_from_claims(claims, s.auth_roles_claim),
                         name if isinstance(name, str) else None,
                         agency_units_from_claims(claims, s.auth_agency_units_claim)), float(claims["exp"])


# ------------------------------------------------------------------------------ FastAPI
def install_auth(app: FastAPI, settings: AuthSettings | None = None) -> TokenVerifier:
    """Create the app's verifier once (settings from the environment if not given)."""
    verifier = TokenVerifier(settings or load_auth_settings())
    app.state.auth = verifier
    return verifier


_bearer = HTTPBearer(auto_error=False, bearerFormat="JWT",
                     description="`Authorization: Bearer <JWT>` (development: `python -m runtime.auth token`)")


async def authenticated(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    """The request's Principal; 401 if the bearer token is missing or invalid."""
    verifier: TokenVerifier | None = getattr(request.app.state, "auth", None)
    if verifier is None:
        raise RuntimeError("install_auth(app, settings) was not called for this app")
    if credentials is None:
        raise Unauthorized("A bearer token is required (Authorization: Bearer <token>).", error=None)
    principal = await verifier.verify(credentials.credentials)
    request.state.principal = principal
    return principal


def require(*roles: Role | str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the Principal if it has at least one of `roles`; else 403 (401 without a token)."""
    wanted = frozenset(Role(r) for r in roles)  # an unknown role name fails here, at import time
    if not wanted:
        raise ValueError("require() needs at least one role")
    needed = ", ".join(sorted(wanted))

    async def _has_role(principal: Principal = Depends(authenticated)) -> Principal:
        if not principal.roles & wanted:
            raise Forbidden(f"This needs one of the roles: {needed}.")
        return principal

    _has_role.__name__ = f"require_{'_or_'.join(sorted(wanted))}"
    _has_role.required_roles = wanted  # read by refusal(), which decides without running the dependency
    return _has_role


def _needs(dependant: Any) -> list[frozenset[Role]] | None:
    """What a dependency tree asks of the caller: None if nothing, else the role sets of its require()s, each
    of which must be met (an empty list: a valid token and nothing more)."""
    needs: list[frozenset[Role]] | None = None
    for dep in dependant.dependencies:
        roles = getattr(dep.call, "required_roles", None)
        below = _needs(dep)
        if dep.call is authenticated or roles is not None or below is not None:
            needs = (needs or []) + ([roles] if roles is not None else []) + (below or [])
    return needs


async def refusal(request: Request) -> DomainError | None:
    """The 401 or 403 (or 503) the request's route answers this caller, or None if it lets the caller in or
    needs no token.

    FastAPI parses a JSON body before any dependency runs, so a body that is not JSON would be answered with a
    422 before the auth decision: the problem handlers ask this first, and a stranger gets the 401 or 403 a
    well-formed request gets, never a word about the endpoint's input."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or getattr(request.app.state, "auth", None) is None:
        return None
    if request.app.dependency_overrides:  # a test stands in for some dependency: leave the decision to them
        return None
    needs = _needs(dependant)  # a walk over a few dozen nodes, on the error path only: not worth a cache
    if needs is None:
        return None
    try:
        principal = await authenticated(request, await _bearer(request))
    except DomainError as exc:  # Unauthorized, AuthUnavailable
        return exc
    for roles in needs:
        if not principal.roles & roles:
            return Forbidden(f"This needs one of the roles: {', '.join(sorted(roles))}.")
    return None


# ------------------------------------------------------------------------------ dev tokens
def issue_token(
    settings: AuthSettings,
    *,
    sub: str,
    roles: Iterable[Role | str],
    name: str | None = None,
    ttl_s: float = 12 * 3600,
    now: float | None = None,
    extra: Mapping[str, Any] | None = None,
    agency_units: Iterable[str] = (),
) -> str:
    """An HS256 token that `settings` accepts (development and tests only)."""
    if settings.auth_mode is not AuthMode.HS256:
        raise RuntimeError("AUTH_MODE=jwks: tokens come from the OIDC provider, not from this tool")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": sub, "iat": issued, "exp": issued + int(ttl_s)}
    if name:
        claims["name"] = name
    if settings.auth_audience:
        claims["aud"] = settings.auth_audience
    if settings.auth_issuer:
        claims["iss"] = settings.auth_issuer
    _put(claims, settings.auth_roles_claim, sorted(Role(r).value for r in roles))
    if units := sorted(set(agency_units)):
        _put(claims, settings.auth_agency_units_claim, units)
    claims.update(extra or {})
    return jwt.encode(claims, settings.auth_hs256_secret.get_secret_value(), algorithm="HS256")


def _put(claims: dict[str, Any], path: str, value: Any) -> None:
    """Put a claim where the verifier looks for it, nesting a dotted path."""
    *parents, leaf = path.split(".")
    node = claims
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_ttl(text: str) -> float:
    """"90" or "90s", "30m", "12h", "7d" -> seconds."""
    match = _TTL.match(text)
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30m, 12h, 7d)")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.auth", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print a development HS256 token signed with AUTH_HS256_SECRET")
    token.add_argument("--role", action="append", default=[], choices=[r.value for r in Role],
                       help="repeat for several roles")
    token.add_argument("--sub", default="dev", help="the subject (user id); default: dev")
    token.add_argument("--name", default=None, help="display name")
    token.add_argument("--ttl", type=parse_ttl, default=parse_ttl("12h"), help="lifetime, e.g. 30m, 12h (default)")
    token.add_argument("--agency-unit", action="append", default=[], metavar="CODE",
                       help="a directory unit code the agency token acts for (with --role agency); repeat, or "
                            "separate codes with commas. A code also covers the units below it")
    args = parser.parse_args(argv)
    units = [c for arg in args.agency_unit for c in _names(arg)]
    if units and "agency" not in args.role:
        parser.error("--agency-unit needs --role agency")

    settings = load_auth_settings()
    if settings.auth_mode is not AuthMode.HS256:
        print("AUTH_MODE=jwks: get tokens from the OIDC provider; this tool signs only hs256 dev tokens.",
              file=sys.stderr)
        return 2
    print(issue_token(settings, sub=args.sub, roles=args.role, name=args.name, ttl_s=args.ttl, agency_units=units))
    return 0


if __name__ == "__main__":
    sys.exit(main())
