"""A small process supervisor for the local stack.

Every child runs in its own session (so a terminal Ctrl-C reaches only the supervisor, which then
stops the children itself) and, on Linux, gets a parent-death signal so it dies even if the
supervisor is SIGKILLed. Note: Linux sends that signal when the *thread* that spawned the child
exits, so spawn from the main thread (or another thread that lives as long as the children).
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def _death_signal_preexec(sig: int):
    """Build a preexec_fn that asks the kernel to send `sig` to the child when we die."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        # We may have died between fork() and prctl(): then nobody would signal us.
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdout: int | IO | None = None,
    stderr: int | IO | None = None,
    death_signal: int = signal.SIGTERM,
    **popen_kwargs,
) -> subprocess.Popen:
    """Popen in a new session that receives `death_signal` when this process dies."""
    return subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_death_signal_preexec(death_signal),
        **popen_kwargs,
    )


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # pgid == pid: spawn() starts a new session
    except ProcessLookupError:
        pass


def terminate(proc: subprocess.Popen, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
    """Send `sig` to the child's whole process group, escalate to SIGKILL after `timeout`."""
    if proc.poll() is not None:
        return proc.returncode
    for s, wait in ((sig, timeout), (signal.SIGKILL, 5.0)):
        _killpg(proc.pid, s)
        try:
            return proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def free_port() -> int:
    """A TCP port nobody listens on right now (racy, but fine for local tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_port_free(port: int, what: str) -> None:
    """Fail clearly if something already listens on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise RuntimeError(f"{what}: port {port} on 127.0.0.1 is already in use") from None


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None, name: str = "") -> None:
    """Poll `url` until it answers 200; fail fast if `proc` exits meanwhile."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name or url}: process exited with {proc.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{name or url}: {url} not ready after {timeout:.0f}s ({last})")


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None
    cwd: str | None
    proc: subprocess.Popen
    log_path: Path | None = None
    _pump: threading.Thread | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid


class Supervisor:
    """Starts named children, waits for their health URLs, stops them all.

    log_dir=None streams each child's output to our stdout, prefixed with its name (make run);
    a directory writes `<log_dir>/<name>.log` instead (tests).
    """

    def __init__(self, log_dir: Path | None = None, cwd: str | Path | None = None):
        self.log_dir = Path(log_dir) if log_dir else None
        self.cwd = str(cwd) if cwd else None
        self.children: dict[str, Child] = {}
        self._out_lock = threading.Lock()
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        if name in self.children and self.children[name].proc.poll() is None:
            raise RuntimeError(f"{name} is already running")
        env = dict(env) if env is not None else None
        if self.log_dir:
            log_path = self.log_dir / f"{name}.log"
            with open(log_path, "ab") as log:  # the child keeps its own copy of the fd
                proc = spawn(argv, env=env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT)
            child = Child(name, list(argv), env, self.cwd, proc, log_path)
        else:
            proc = spawn(argv, env=env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            child = Child(name, list(argv), env, self.cwd, proc)
            child._pump = threading.Thread(target=self._pump, args=(name, proc), daemon=True)
            child._pump.start()
        self.children[name] = child
        return child

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        prefix = f"{name:<10}| "
        for line in iter(proc.stdout.readline, b""):
            text = line.decode("utf-8", errors="replace").rstrip("\n")
            with self._out_lock:  # one whole line at a time, never interleaved
                print(prefix + text, flush=True)
        proc.stdout.close()

    def wait_ready(self, name: str, url: str, timeout: float = 60.0) -> None:
        wait_http(url, timeout, proc=self.children[name].proc, name=name)

    def stop(self, name: str, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        child = self.children[name]
        code = terminate(child.proc, timeout, sig)
        if child._pump:
            child._pump.join(2)
        return code

    def restart(self, name: str, timeout: float = 10.0) -> Child:
        child = self.children[name]
        self.stop(name, timeout)
        return self.start(name, child.argv, child.env)

    def exited(self) -> dict[str, int]:
        """Children that are no longer running, with their exit codes."""
        return {n: c.proc.returncode for n, c in self.children.items() if c.proc.poll() is not None}

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM every child at once (shutdowns overlap), SIGKILL whatever is left after `timeout`."""
        running = [c for c in self.children.values() if c.proc.poll() is None]
        for child in running:
            _killpg(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in running:
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                terminate(child.proc, 0, signal.SIGKILL)
        for child in self.children.values():
            if child._pump:
                child._pump.join(2)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def run_sync(coro):
    """asyncio.run(coro), also when called from code already inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="devstack-run-sync")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")
