"""The local stack, shared by `make run` and the pytest session.

Everything here is synchronous (subprocesses and blocking waits) and safe to call from inside a
running event loop. Typical use from a test session:

    ports = Ports.free()
    stack = Stack(data_dir=tmp / "pg", ports=ports, fast=True, log_dir=tmp / "logs").start()
    stack.url("intake")            # "http://127.0.0.1:<port>"
    stack.smtp_messages_url        # "http://127.0.0.1:<port>/messages"
    stack.sms_url                  # the local SMS gateway: /messages, /control (devstack/sms_gateway.py)
    stack.token("operator", sub="op-1")   # a bearer token the services accept (AUTH_HS256_SECRET)
    stack.token("agency", sub="pol-1", agency_units=["police-province-01"])   # an agency's token
    stack.infra.broker.pid         # None if KAFKA_BOOTSTRAP_SERVERS pointed elsewhere
    stack.services.restart("notify")
    stack.services.kill("referral"); stack.services.start("referral")   # a crash (SIGKILL), then back
    stack.services.start_replica("notify")   # "notify#2": a second process on a free port
    stack.infra.postgres.restart()           # the same data directory and port
    stack.stop()

or the pieces: `Infra(...).start()` -> `prepare(db_url, bootstrap)` -> `start_services(...)`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from devstack.broker import TansuBroker
from devstack.postgres import EmbeddedPostgres
from devstack.procs import Supervisor, check_port_free, free_port, run_sync
from devstack.topics import ensure_topics

__all__ = ["REPO_ROOT", "SERVICES", "Ports", "Infra", "Services", "Stack", "free_port", "prepare",
           "start_services", "service_env", "load_or_create_pii_key", "new_pii_key",
           "load_or_create_hmac_key", "new_hmac_key", "load_or_create_auth_secret", "new_auth_secret",
           "load_or_create_link_secret", "new_link_secret"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("intake", "referral", "notify", "reporting")
DATABASE = "hotline"


@dataclass
class Ports:
    """Every local port. `from_env()` honours INTAKE_PORT, ..., POSTGRES_PORT; `free()` is for tests."""

    intake: int = 8001
    referral: int = 8002
    notify: int = 8003
    reporting: int = 8004
    broker: int = 9092
    smtp: int = 1025
    smtp_http: int = 8025
    sms_gateway: int = 8026
    postgres: int = 5433  # not 5432: a system PostgreSQL may live there

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Ports:
        return cls(**{f.name: int(env.get(f"{f.name.upper()}_PORT", f.default)) for f in fields(cls)})

    @classmethod
    def free(cls) -> Ports:
        chosen: set[int] = set()
        while len(chosen) < len(fields(cls)):  # the OS may hand out a just-released port twice
            chosen.add(free_port())
        return cls(*sorted(chosen))

    def service(self, name: str) -> int:
        return getattr(self, name)


def new_pii_key() -> str:
    """A fresh PII_ENCRYPTION_KEYS value: one `kid:base64url-key` entry (AES-256-GCM)."""
    from runtime.crypto import new_key

    return new_key()


def new_hmac_key() -> str:
    """A fresh PII_HMAC_KEY value: 32 random bytes in base64url, for blind indexes (phone lookup)."""
    from runtime.crypto import new_hmac_key as new

    return new()


def _load_or_create(path: Path, create, check) -> str:
    if path.exists():
        value = path.read_text().strip()
        check(path, value)
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = create()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def _check_pii_keys(path: Path, value: str) -> None:
    from runtime.crypto import parse_keys

    if value and ":" not in value:  # the Fernet key of an earlier version: its data cannot be read now
        raise RuntimeError(
            f"{path} holds a Fernet key from before AES-GCM encryption; the cases encrypted under "
            "it cannot be read any more. Run `make clean-data` (it deletes local dev data only) and start again."
        )
    parse_keys(value, var=f"PII_ENCRYPTION_KEYS (from {path})")


def _check_hmac_key(path: Path, value: str) -> None:
    from runtime.crypto import parse_hmac_key

    parse_hmac_key(value, var=f"PII_HMAC_KEY (from {path})")


def load_or_create_pii_key(path: Path) -> str:
    """The dev PII_ENCRYPTION_KEYS, kept on disk so data encrypted in one `make run` decrypts in the next.
    A Fernet key left by an earlier version is refused with a message saying to run `make clean-data`."""
    return _load_or_create(path, new_pii_key, _check_pii_keys)


def load_or_create_hmac_key(path: Path) -> str:
    """The dev PII_HMAC_KEY (e.g. .data/pii-hmac.key), kept on disk so blind indexes stay valid across runs."""
    return _load_or_create(path, new_hmac_key, _check_hmac_key)


def new_auth_secret() -> str:
    """A fresh AUTH_HS256_SECRET: the key development and test tokens are signed with (HS256)."""
    import secrets

    return secrets.token_urlsafe(32)


def load_or_create_auth_secret(path: Path) -> str:
    """The dev AUTH_HS256_SECRET (.data/auth.secret), kept so tokens from one `make run` work in the next."""
    return _load_or_create(path, new_auth_secret, lambda _path, _value: None)


def new_link_secret() -> str:
    """A fresh REFERRAL_LINK_SECRET: the key referral signs its acknowledge links with (HS256)."""
    import secrets

    return secrets.token_urlsafe(32)


def load_or_create_link_secret(path: Path) -> str:
    """The dev REFERRAL_LINK_SECRET (.data/referral-link.secret), kept so links sent in one `make run` work
    in the next."""
    return _load_or_create(path, new_link_secret, lambda _path, _value: None)


# ---------------------------------------------------------------------------------------------
@dataclass
class Infra:
    """PostgreSQL + Tansu. Each is started only if DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS is unset
    in `env`; otherwise the given one is used as is (and not stopped).

    data_dir: postgres cluster directory (`make run`: <repo>/.data/postgres; tests: a fresh temp dir).
    fast: fsync etc. off (tests only). log_dir: where tansu.log goes (None: discarded).
    After start(): `database_url` (SQLAlchemy asyncpg URL) and `bootstrap` ("host:port").
    """

    data_dir: Path
    ports: Ports = field(default_factory=Ports.from_env)
    fast: bool = False
    log_dir: Path | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    database_url: str = ""
    bootstrap: str = ""
    postgres: EmbeddedPostgres | None = None
    broker: TansuBroker | None = None

    def start(self) -> Infra:
        try:
            if self.env.get("DATABASE_URL"):
                self.database_url = self.env["DATABASE_URL"]
            else:
                self.postgres = EmbeddedPostgres(self.data_dir, self.ports.postgres, fast=self.fast)
                self.database_url = self.postgres.start(DATABASE)
            if self.env.get("KAFKA_BOOTSTRAP_SERVERS"):
                self.bootstrap = self.env["KAFKA_BOOTSTRAP_SERVERS"]
            else:
                log = Path(self.log_dir) / "tansu.log" if self.log_dir else None
                self.broker = TansuBroker(self.ports.broker, log_path=log)
                self.bootstrap = self.broker.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.broker:
            self.broker.stop()
        if self.postgres:
            self.postgres.stop()

    def __enter__(self) -> Infra:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
def _base_env(database_url: str, bootstrap: str, extra_env: Mapping[str, str] | None) -> dict[str, str]:
    # Pass our environment through (OTEL_EXPORTER_OTLP_ENDPOINT, LOG_LEVEL, ...) but never a
    # stray PORT or URL from the caller's shell: the explicit values below win.
    env = dict(os.environ)
    env.update(extra_env or {})
    env.update(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=bootstrap, PYTHONUNBUFFERED="1")
    return env


def service_env(
    name: str,
    *,
    database_url: str,
    bootstrap: str,
    ports: Ports,
    pii_keys: str,
    extra_env: Mapping[str, str] | None = None,
    auth_secret: str | None = None,
    pii_hmac_key: str | None = None,
    link_secret: str | None = None,
    sms_providers: str | None = None,
) -> dict[str, str]:
    """The environment `python -m services.<name>` runs with. sms_providers: notify's SMS_PROVIDERS (JSON)."""
    env = _base_env(database_url, bootstrap, extra_env)
    env.update(HOST="127.0.0.1", PORT=str(ports.service(name)))
    if auth_secret:  # every service verifies the HS256 dev tokens (AUTH_MODE may be overridden in extra_env)
        env.update(AUTH_MODE=(extra_env or {}).get("AUTH_MODE", "hs256"), AUTH_HS256_SECRET=auth_secret)
    if name == "intake":
        env["PII_ENCRYPTION_KEYS"] = pii_keys
        env["PII_HMAC_KEY"] = pii_hmac_key or new_hmac_key()
    if name == "notify":
        # Its own data to encrypt (webhook secrets); locally the same dev key ring as intake.
        env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(ports.smtp), PII_ENCRYPTION_KEYS=pii_keys,
                   NOTIFY_FICTITIOUS_NUMBERS="true")
        if sms_providers and "SMS_PROVIDERS" not in (extra_env or {}):  # the local gateway, unless told otherwise
            env["SMS_PROVIDERS"] = sms_providers
        env["SMS_CALLBACK_BASE_URL"] = (extra_env or {}).get("SMS_CALLBACK_BASE_URL",
                                                             f"http://127.0.0.1:{ports.service(name)}")
    if name == "referral":
        env["REFERRAL_LINK_SECRET"] = link_secret or new_link_secret()
        # Acknowledge links point at this process unless the caller names a public address.
        env["REFERRAL_PUBLIC_URL"] = (extra_env or {}).get("REFERRAL_PUBLIC_URL",
                                                           f"http://127.0.0.1:{ports.service(name)}")
    return env


def prepare(
    database_url: str,
    bootstrap: str,
    *,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 180.0,
    quiet: bool = True,
) -> None:
    """Create the topics, run every service's migrations, seed the referral directory.

    Each step is a `python -m services.<name> <cmd>` subprocess; a failure raises RuntimeError
    carrying that command's output. Safe to repeat.
    """
    run_sync(ensure_topics(bootstrap))
    env = _base_env(database_url, bootstrap, extra_env)
    steps = [(name, "migrate") for name in SERVICES] + [("referral", "seed")]
    for name, cmd in steps:
        argv = [sys.executable, "-m", f"services.{name}", cmd]
        done = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(argv[1:])}` failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        if not quiet:
            print(f"prepare: services.{name} {cmd} ok", flush=True)


# ---------------------------------------------------------------------------------------------
@dataclass
class Services:
    """The running SMTP sink ("smtp"), SMS gateway ("sms") and services, all children of `supervisor`."""

    supervisor: Supervisor
    ports: Ports

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports.service(name)}"

    @property
    def smtp_http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.smtp_http}"

    @property
    def sms_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.sms_gateway}"

    def pid(self, name: str) -> int:
        return self.supervisor.children[name].pid

    def restart(self, name: str, ready_timeout: float = 60.0) -> None:
        """Stop (SIGTERM) and start one service again, waiting until it is ready."""
        self.supervisor.restart(name)
        self.supervisor.wait_ready(name, self._ready_url(name), ready_timeout)

    def kill(self, name: str) -> int | None:
        """SIGKILL a child (a crash: no shutdown, nothing flushed or committed), wait for it, return its code.
        `start` brings it back."""
        return self.supervisor.stop(name, timeout=5, sig=signal.SIGKILL)

    def start(self, name: str, ready_timeout: float = 60.0, wait: bool = True) -> None:
        """Start a stopped or killed child again as it was (same command, environment and port), and wait
        until it is ready (wait=False: `wait_ready` later). Call from the thread that started the stack: the
        child dies with that thread."""
        child = self.supervisor.children[name]
        self.supervisor.start(name, child.argv, child.env)
        if wait:
            self.wait_ready(name, ready_timeout)

    def start_replica(self, name: str, replica: str | None = None, ready_timeout: float = 60.0,
                      wait: bool = True) -> str:
        """A second process of service `name`: the same settings (database, broker, consumer groups) on a
        free port, as one more replica is on Kubernetes. Returns the child's name (`<name>#2` unless
        given); `url_of` it, `kill` and `supervisor.stop` it like any child. wait=False: `wait_ready` later
        (replicas started together join their consumer groups together)."""
        child = self.supervisor.children[name]
        replica = replica or f"{name}#2"
        port = free_port()
        env = dict(child.env or {}) | {"PORT": str(port)}
        if name == "notify":  # the gateway's receipts come back to the replica that sent the message
            env["SMS_CALLBACK_BASE_URL"] = f"http://127.0.0.1:{port}"
        self.supervisor.start(replica, child.argv, env)
        if wait:
            self.wait_ready(replica, ready_timeout)
        return replica

    def wait_ready(self, child: str, timeout: float = 60.0) -> None:
        """Wait until a child answers its readiness probe (a service: database up and consumers joined)."""
        self.supervisor.wait_ready(child, self._ready_url(child), timeout)

    def url_of(self, child: str) -> str:
        """The HTTP address of a service's child process, replicas included."""
        env = self.supervisor.children[child].env or {}
        return f"http://127.0.0.1:{env['PORT']}" if "PORT" in env else self.url(child)

    def _ready_url(self, name: str) -> str:
        if name in ("smtp", "sms"):
            return f"{self.smtp_http_url if name == 'smtp' else self.sms_url}/healthz"
        return f"{self.url_of(name)}/readyz"

    def stop(self, timeout: float = 10.0) -> None:
        self.supervisor.stop_all(timeout)


def start_services(
    database_url: str,
    bootstrap: str,
    ports: Ports,
    *,
    pii_keys: str,
    log_dir: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    ready_timeout: float = 60.0,
    names: tuple[str, ...] = SERVICES,
    auth_secret: str | None = None,
    pii_hmac_key: str | None = None,
    link_secret: str | None = None,
) -> Services:
    """Start the SMTP sink and the SMS gateway, then `names`, and wait for each one's GET /readyz to answer 200.

    log_dir=None streams output to stdout prefixed by name (make run); else <log_dir>/<name>.log.
    ready_timeout is generous because joining a Kafka consumer group takes 5-18 s on Tansu.
    On failure everything started so far is stopped again.
    """
    from devstack.sms_gateway import GatewayCredentials

    for what in ("smtp", "smtp_http", "sms_gateway", *names):
        check_port_free(getattr(ports, what), what)
    supervisor = Supervisor(log_dir=log_dir, cwd=REPO_ROOT)
    services = Services(supervisor, ports)
    try:
        smtp_env = _base_env(database_url, bootstrap, extra_env)
        smtp_env.update(SMTP_PORT=str(ports.smtp), SMTP_HTTP_PORT=str(ports.smtp_http))
        supervisor.start("smtp", [sys.executable, "-m", "devstack.smtp"], smtp_env)
        # Fresh credentials each start: the gateway checks and signs with them, notify gets them in SMS_PROVIDERS.
        sms_creds = GatewayCredentials.new()
        sms_env = {**smtp_env, **sms_creds.env(), "SMS_GATEWAY_PORT": str(ports.sms_gateway)}
        supervisor.start("sms", [sys.executable, "-m", "devstack.sms_gateway"], sms_env)
        supervisor.wait_ready("smtp", services._ready_url("smtp"), 30)
        supervisor.wait_ready("sms", services._ready_url("sms"), 30)
        sms_providers = json.dumps(sms_creds.providers(services.sms_url))
        for name in names:
            env = service_env(name, database_url=database_url, bootstrap=bootstrap, ports=ports,
                              pii_keys=pii_keys, extra_env=extra_env, auth_secret=auth_secret,
                              pii_hmac_key=pii_hmac_key, link_secret=link_secret, sms_providers=sms_providers)
            supervisor.start(name, [sys.executable, "-m", f"services.{name}"], env)
        for name in names:  # they start concurrently; the waits overlap
            supervisor.wait_ready(name, services._ready_url(name), ready_timeout)
    except BaseException:
        supervisor.stop_all()
        raise
    return services


# ---------------------------------------------------------------------------------------------
class Stack:
    """Infra + prepare + services in one object; stop() tears down in reverse order."""

    def __init__(
        self,
        data_dir: Path,
        ports: Ports | None = None,
        *,
        pii_keys: str | None = None,
        fast: bool = False,
        log_dir: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        ready_timeout: float = 60.0,
        auth_secret: str | None = None,
        pii_hmac_key: str | None = None,
        link_secret: str | None = None,
    ):
        self.ports = ports or Ports.from_env()
        self.pii_keys = pii_keys or new_pii_key()
        self.pii_hmac_key = pii_hmac_key or new_hmac_key()
        self.auth_secret = auth_secret or new_auth_secret()  # AUTH_HS256_SECRET of the services
        self.link_secret = link_secret or new_link_secret()  # REFERRAL_LINK_SECRET of referral
        self.log_dir = log_dir
        self.extra_env = dict(extra_env or {})
        self.ready_timeout = ready_timeout
        self.infra = Infra(Path(data_dir), self.ports, fast=fast, log_dir=log_dir)
        self.services: Services | None = None

    @property
    def database_url(self) -> str:
        return self.infra.database_url

    @property
    def bootstrap(self) -> str:
        return self.infra.bootstrap

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports.service(name)}"

    @property
    def smtp_messages_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.smtp_http}/messages"

    @property
    def sms_url(self) -> str:
        """The local SMS gateway: GET /messages lists what was sent, POST /control makes it misbehave."""
        return f"http://127.0.0.1:{self.ports.sms_gateway}"

    @property
    def sms_messages_url(self) -> str:
        return f"{self.sms_url}/messages"

    def token(self, *roles: str, sub: str = "test", name: str | None = None, ttl_s: float = 3600,
              agency_units: tuple[str, ...] | list[str] = ()) -> str:
        """A bearer token the services accept: stack.token("operator", sub="op-1"), or for an agency
        stack.token("agency", sub="pol-1", agency_units=["police-province-01"])."""
        from runtime.auth import AuthSettings, issue_token

        settings = AuthSettings.from_env({**os.environ, **self.extra_env}, auth_mode="hs256",
                                         auth_hs256_secret=self.auth_secret)
        return issue_token(settings, sub=sub, roles=roles, name=name, ttl_s=ttl_s, agency_units=agency_units)

    def auth_headers(self, *roles: str, sub: str = "test", name: str | None = None) -> dict[str, str]:
        """{"Authorization": "Bearer ..."} for stack.token(*roles, sub=sub)."""
        return {"Authorization": f"Bearer {self.token(*roles, sub=sub, name=name)}"}

    def start(self, prepare_quiet: bool = True) -> Stack:
        try:
            self.infra.start()
            prepare(self.database_url, self.bootstrap, extra_env=self.extra_env, quiet=prepare_quiet)
            self.services = start_services(
                self.database_url, self.bootstrap, self.ports, pii_keys=self.pii_keys, log_dir=self.log_dir,
                extra_env=self.extra_env, ready_timeout=self.ready_timeout,
                auth_secret=self.auth_secret, pii_hmac_key=self.pii_hmac_key, link_secret=self.link_secret,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.services:
            self.services.stop()
            self.services = None
        self.infra.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

