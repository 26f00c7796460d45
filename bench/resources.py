"""Memory of each process of the stack while a stage runs (psutil), beside bench/machine.py's CPU seconds.

For each named process the figure is summed over the process and its children, as the CPU is:
PostgreSQL is the postmaster and its backends. RSS counts a shared page in every process that maps it,
so PostgreSQL's RSS counts shared_buffers once per backend; PSS divides each shared page between the
processes that map it, so PSS sums to what the processes really hold together. Both are kept; the
printed table shows RSS (what `ps` and a container's limit see) and PostgreSQL's PSS beside it.
"""
from __future__ import annotations

import threading

import psutil

MB = 2**20


def _tree(pid: int, with_children: bool) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)] if with_children else [proc]


def memory(pids: dict[str, int], load_client: str = "bench (load client)") -> dict[str, dict]:
    """{name: {"rss_mb", "pss_mb"}} now, each summed over the process's tree (the load client alone: its
    children are the processes it measures)."""
    out = {}
    for name, pid in pids.items():
        rss = pss = 0
        try:
            procs = _tree(pid, name != load_client)
        except psutil.Error:
            continue
        for p in procs:
            try:
                full = p.memory_full_info()  # smaps_rollup on Linux: cheap
                rss += full.rss
                pss += getattr(full, "pss", full.rss)
            except psutil.AccessDenied:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            except psutil.Error:
                pass
        out[name] = {"rss_mb": round(rss / MB, 1), "pss_mb": round(pss / MB, 1)}
    return out


class MemorySampler:
    """`with MemorySampler(pids) as m:` samples every `interval` seconds in a thread (psutil blocks; the
    load client's event loop must not) and keeps each process's peak and last RSS and PSS."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5):
        self.pids, self.interval = pids, interval
        self.peak: dict[str, dict] = {}
        self.last: dict[str, dict] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def _take(self) -> None:
        now = memory(self.pids)
        self.last = now
        self.samples += 1
        for name, m in now.items():
            peak = self.peak.setdefault(name, dict(m))
            for key, value in m.items():
                peak[key] = max(peak[key], value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def __enter__(self) -> MemorySampler:
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._take()

    def result(self) -> dict:
        return {"samples": self.samples, "interval_s": self.interval,
                "per_process": {n: {"peak_rss_mb": self.peak[n]["rss_mb"], "peak_pss_mb": self.peak[n]["pss_mb"],
                                    "end_rss_mb": self.last.get(n, {}).get("rss_mb")} for n in self.peak}}
