"""Sampling profile of a running process with py-spy, and a top-N summary of where its CPU went.

py-spy attaches to the PID from outside, so the service's code is untouched. Only on-CPU samples
are recorded (no --idle): a sample is a moment the process was running Python or C code, not
waiting in the event loop's epoll. `--format raw` writes collapsed stacks ("f1;f2;f3 count").
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from devstack.procs import spawn, terminate

REPO_ROOT = str(Path(__file__).resolve().parent.parent)
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")


def py_spy_path() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")  # pip puts it next to the venv's python
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Recorder:
    """`with Recorder(pid, out):` records while the block runs; SIGINT makes py-spy write the file."""

    def __init__(self, pid: int, out: Path, rate: int = 250):
        self.pid, self.out, self.rate = pid, out, rate
        self.proc: subprocess.Popen | None = None
        self.log = out.with_suffix(".log")

    def __enter__(self) -> Recorder:
        exe = py_spy_path()
        if exe is None:
            raise RuntimeError("py-spy not found: .venv/bin/pip install '.[bench]'")
        # --function: one key per function (its first line), not per line; --nonblocking: the target
        # is never paused, so the profiled run is barely slowed (stacks may be slightly torn).
        argv = [exe, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", "raw",
                "--function", "--nonblocking", "--output", str(self.out)]
        with open(self.log, "wb") as log:
            self.proc = spawn(argv, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            terminate(self.proc)


def _short(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if path.startswith(REPO_ROOT):
        return path[len(REPO_ROOT) + 1:]
    if m := re.search(r"/lib/python3\.\d+/(.*)$", path):
        return f"<stdlib>/{m.group(1)}"
    return path


def _package(path: str) -> str:
    """Where a frame's code lives: a third-party package, a project package, or a stdlib module."""
    short = _short(path)
    parts = short.split("/")
    if short.startswith("<stdlib>"):
        return "stdlib " + parts[1].removesuffix(".py")
    if parts[0] in ("services", "runtime", "schemas") and len(parts) > 1:
        return "/".join(parts[:2]).removesuffix(".py") if parts[0] == "services" else parts[0]
    return parts[0].removesuffix(".py")


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for raw in stack.split(";"):
        m = FRAME.match(raw)
        out.append((m.group("func"), m.group("file")) if m else (raw, ""))
    return out


def samples(raw: Path) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """(count, [(function, file), …] root first) for each stack of py-spy's raw output."""
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield int(count), _frames(stack)


GREENLETS = "statements in greenlets (callers cut off)"


def focus(raw: Path, what, whole=()) -> list[dict]:
    """Inclusive shares of the samples for each (label, test(function, short path)) in `what`, for each
    (label, test(frames)) in `whole` on the whole stack, and of the stacks py-spy shows without their
    callers: SQLAlchemy's async layer runs each statement in a greenlet, so those count under none of the
    project's functions. Rows come in the order of `what`, then `whole`."""
    if not raw.exists():
        return []
    total, hits = 0, dict.fromkeys([label for label, _ in (*what, *whole)] + [GREENLETS], 0)
    for n, frames in samples(raw):
        total += n
        short = [(f, _short(p)) for f, p in frames]
        for label, test in what:
            if any(test(f, p) for f, p in short):
                hits[label] += n
        for label, test in whole:
            if test(frames):
                hits[label] += n
        if frames and frames[0][0] != "_run_module_as_main":
            hits[GREENLETS] += n
    return [{"what": k, "samples": v, "pct": round(100 * v / max(1, total), 1)} for k, v in hits.items()]


def summarise(raw: Path, top: int = 15) -> dict:
    """Self and inclusive shares by function and by package, from py-spy's collapsed stacks."""
    total = 0
    self_fn, incl_fn, self_pkg, incl_pkg = Counter(), Counter(), Counter(), Counter()
    for n, frames in samples(raw):
        total += n
        func, file = frames[-1]
        self_fn[f"{func} ({_short(file)})"] += n
        self_pkg[_package(file)] += n
        # Inclusive by function: the project's own frames only (the framework's are on every stack).
        for key in {f"{f} ({_short(p)})" for f, p in frames if _short(p).startswith(("services/", "runtime/"))}:
            incl_fn[key] += n
        for pkg in {_package(p) for _f, p in frames if p}:
            incl_pkg[pkg] += n

    def share(counter: Counter) -> list[dict]:
        return [{"what": k, "samples": v, "pct": round(100 * v / total, 1)} for k, v in counter.most_common(top)]

    return {"samples": total, "self_functions": share(self_fn), "inclusive_functions": share(incl_fn),
            "self_packages": share(self_pkg), "inclusive_packages": share(incl_pkg)}


SECTIONS = (("by package, inclusive (any frame in the stack)", "inclusive_packages"),
            ("by package, self (the running frame)", "self_packages"),
            ("by function, self", "self_functions"),
            ("project functions, inclusive", "inclusive_functions"))


def section_lines(summary: dict, top: int) -> list[str]:
    """The printed shares of a `summarise` result, `top` lines per section."""
    lines: list[str] = []
    for title, key in SECTIONS:
        lines += ["", f"  {title}"]
        lines += [f"  {e['pct']:5.1f} %  {e['what']}" for e in summary[key][:top]]
    return lines
