"""`make run`: the whole platform on this machine, until Ctrl-C.

PostgreSQL keeps its data in .data/postgres; the broker is in-memory, so topics are recreated on
every start. Ctrl-C or SIGTERM stops services, SMTP sink, broker and PostgreSQL, then exits 0.
"""
from __future__ import annotations

import signal
import sys
import time

from devstack.stack import REPO_ROOT, SERVICES, Infra, Ports, load_or_create_pii_key, prepare, start_services

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
    ]
    lines = [f"  {name:<10} {value}" for name, value in rows]
    return "\n".join(["", "hotline111 is running:", *lines, "",
                      "Report a case with the curl example in README.md, then watch the mailbox URL.",
                      "Ctrl-C stops everything.", ""])


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
        services = start_services(infra.database_url, infra.bootstrap, ports,
                                  pii_keys=load_or_create_pii_key(DATA / "pii.key"))
        print(_banner(ports, infra), flush=True)
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
