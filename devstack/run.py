"""`make run`: the whole platform on this machine, until Ctrl-C.

PostgreSQL keeps its data in .data/postgres; the broker is in-memory, so topics are recreated on
every start. Ctrl-C or SIGTERM stops services, SMTP sink, SMS gateway, broker and PostgreSQL, then exits 0.
"""
from __future__ import annotations

import os
import signal
import sys
import time

from devstack.stack import REPO_ROOT, SERVICES, Infra, Ports, load_or_create_pii_key, prepare, start_services
from devstack.stack import load_or_create_auth_secret, load_or_create_hmac_key, load_or_create_link_secret

DATA = REPO_ROOT / ".data"


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # every stop signal takes the same clean path as Ctrl-C


def _banner(ports: Ports, infra: Infra) -> str:
    rows = [(name, f"http://127.0.0.1:{ports.service(name)}/docs") for name in SERVICES]
    rows += [
        ("broker", f"{infra.bootstrap} (Tansu, in-memory)" if infra.broker else infra.bootstrap),
        ("postgres", infra.database_url),
        ("smtp", f"127.0.0.1:{ports.smtp}"),
        ("mailbox", f"http://127.0.0.1:{ports.smtp_http}/messages"),
        ("sms", f"http://127.0.0.1:{ports.sms_gateway}/messages (local gateway; POST /control to misbehave)"),
    ]
    lines = [f"  {name:<10} {value}" for name, value in rows]
    return "\n".join(["", "hotline111 is running:", *lines, "",
                      "Report a case with the curl example in README.md, then watch the mailbox and sms URLs.",
                      "Ctrl-C stops everything.", ""])


# (variable in .data/tokens.env, subject, display name, roles, agency units): one dev user per role. The
# agency is Hà Nội's provincial police, so it also sees its commune police units' referrals.
DEV_USERS = (
    ("OPERATOR_TOKEN", "op-1", "Operator 1", ("operator",), ()),
    ("SUPERVISOR_TOKEN", "sup-1", "Supervisor 1", ("supervisor",), ()),
    ("AUDITOR_TOKEN", "aud-1", "Auditor 1", ("auditor",), ()),
    ("AGENCY_TOKEN", "pol-01", "Hà Nội police duty officer", ("agency",), ("police-province-01",)),
    ("ADMIN_TOKEN", "dir-1", "Directory administrator 1", ("admin",), ()),
    ("ANALYST_TOKEN", "ana-1", "Analyst 1", ("analyst",), ()),
    ("REPORTING_ADMIN_TOKEN", "rep-1", "Reporting administrator 1", ("analyst", "admin"), ()),
)
DEV_TOKEN_TTL_S = 12 * 3600


def _dev_tokens(secret: str, ports: Ports) -> str:
    """Sign a 12 h token per dev user, write them to .data/tokens.env (0600), return what to print."""
    from runtime.auth import AuthSettings, issue_token

    # The services get the same environment (plus the secret), so AUTH_AUDIENCE etc. agree.
    settings = AuthSettings(auth_mode="hs256", auth_hs256_secret=secret)
    tokens = {var: issue_token(settings, sub=sub, roles=roles, name=name, ttl_s=DEV_TOKEN_TTL_S, agency_units=units)
              for var, sub, name, roles, units in DEV_USERS}
    path = DATA / "tokens.env"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{var}={token}\n" for var, token in tokens.items()))
    os.chmod(path, 0o600)
    lines = ["Development tokens (valid 12 h; `source .data/tokens.env` sets these variables):"]
    lines += [f"  {roles[0]:<10} {sub:<6} {var}={tokens[var]}" for var, sub, _name, roles, _units in DEV_USERS]
    lines += ["Send one with every API call, e.g.:",
              f'  curl -H "Authorization: Bearer $OPERATOR_TOKEN" http://127.0.0.1:{ports.intake}/cases/<id>', ""]
    return "\n".join(lines)


def main() -> int:
    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python then keeps it so.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    ports = Ports.from_env()
    infra = Infra(DATA / "postgres", ports, log_dir=DATA / "logs")
    services = None
    code = 0
    try:
        print("starting postgres and broker ...", flush=True)
        infra.start()
        print("migrating, creating topics, seeding ...", flush=True)
        prepare(infra.database_url, infra.bootstrap, quiet=False)
        print("starting services ...", flush=True)
        auth_secret = load_or_create_auth_secret(DATA / "auth.secret")
        services = start_services(infra.database_url, infra.bootstrap, ports, auth_secret=auth_secret,
                                  pii_keys=load_or_create_pii_key(DATA / "pii.key"),
                                  pii_hmac_key=load_or_create_hmac_key(DATA / "pii-hmac.key"),
                                  link_secret=load_or_create_link_secret(DATA / "referral-link.secret"))
        print(_banner(ports, infra), flush=True)
        print(_dev_tokens(auth_secret, ports), flush=True)
        reported: set[str] = set()
        while True:
            time.sleep(1)
            for name, rc in services.supervisor.exited().items():
                if name not in reported:  # say so, keep the rest up for debugging
                    reported.add(name)
                    print(f"!! {name} exited with code {rc}; see its output above", flush=True)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # startup failure: report it plainly, still clean up
        print(f"\nmake run failed: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        # A second Ctrl-C must not cut the shutdown short (children would die anyway via
        # their parent-death signal, but postgres would then skip its clean stop).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        print("\nstopping ...", flush=True)
        if services:
            services.stop()
        infra.stop()
        print("stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
