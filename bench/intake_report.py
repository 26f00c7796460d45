"""The `python -m bench intake` table: intake beside its ceilings, the targets of issue 3, the profile."""
from __future__ import annotations

from bench.profile import section_lines
from bench.report import HEADER, _cpu_lines, _machine_lines, _ms, _n, pgbench_rows, table_lines

TARGET_SHARE = 1 / 3  # of the minimal endpoint's throughput, one process, full intake semantics
TARGET_P99_MS, TARGET_RATE = 50.0, 100.0


def targets(r: dict) -> list[tuple[str, str, str]]:
    """(target, measured, PASS/MISS/-): information for the reader, never an assertion."""
    closed = r.get("closed") or []
    minimal = (r.get("ceilings") or {}).get("minimal_api") or []
    best = max((c["rate_per_s"] or 0 for c in closed), default=0)
    best_min = max((m["rate_per_s"] or 0 for m in minimal), default=0)
    out = []
    if best and best_min:
        share = best / best_min
        out.append(("throughput >= 1/3 of the minimal endpoint's",
                    f"{_n(best)} / {_n(best_min)} = {share:.2f}", "PASS" if share >= TARGET_SHARE else "MISS"))
    else:
        out.append(("throughput >= 1/3 of the minimal endpoint's", "not measured", "-"))
    at = next((o for o in r.get("open") or [] if o["rate_per_s"] == TARGET_RATE), None)
    if at and at["http_latency"]["n"]:
        p99, ok = at["http_latency"]["p99_ms"], not at["errors"] and at["ok"] == at["scheduled"]
        out.append((f"POST /cases p99 < {_n(TARGET_P99_MS)} ms at {_n(TARGET_RATE)}/s",
                    f"{_n(p99)} ms" + ("" if ok else f", errors {at['errors']}"),
                    "PASS" if ok and p99 < TARGET_P99_MS else "MISS"))
    else:
        out.append((f"POST /cases p99 < {_n(TARGET_P99_MS)} ms at {_n(TARGET_RATE)}/s", "not measured", "-"))
    return out


def rows(r: dict) -> list[tuple[str, str, str, str]]:
    c = r.get("ceilings") or {}
    pg = {p["clients"]: p for p in c.get("pgbench", [])}
    minimal = {m["concurrency"]: m for m in c.get("minimal_api", [])}
    out: list[tuple[str, str, str, str]] = []
    closed = r.get("closed") or []
    if closed:
        out.append((f"# Throughput: closed loop, {closed[0]['requests']} cases per run (full report, JWT, "
                    "Idempotency-Key)", "", "", ""))
    for t in closed:
        m = minimal.get(t["concurrency"], {})
        ratio = f"{t['rate_per_s'] / m['rate_per_s']:.2f}" if m.get("rate_per_s") and t["rate_per_s"] else "-"
        out += [
            (f"intake, {t['concurrency']} in flight", _n(t["rate_per_s"], " cases/s"),
             f"minimal FastAPI+asyncpg, {t['concurrency']} in flight", _n(m.get("rate_per_s"), " req/s")),
            ("  POST /cases p50 / p99", _ms(t["http_latency"], "p50", "p99"),
             "  minimal p50 / p99", _ms(m.get("http_latency"), "p50", "p99")),
            ("  PostgreSQL transactions / WAL fsyncs per case",
             f"{_n(t['pg_transactions_per_case'])} / {_n(t['pg_wal_fsyncs_per_case'])}",
             "  intake / minimal throughput", ratio),
            ("  errors; outbox drained after", f"{t['errors'] or 0}; {_n(t['outbox_drain_after_s'], ' s')}",
             f"pgbench 1-row INSERT, -c {t['concurrency']}" if t["concurrency"] in pg else "",
             _n(pg[t["concurrency"]]["commits_per_s"], " commits/s") if t["concurrency"] in pg else ""),
        ]
    if r.get("open"):
        out.append(("# Latency: open loop, from the scheduled send time", "", "", ""))
    for o in r.get("open") or []:
        out += [
            (f"{_n(o['rate_per_s'])} cases/s for {_n(o['duration_s'])} s: p50 / p90 / p99 / max",
             _ms(o["http_latency"], "p50", "p90", "p99", "max"),
             "pgbench 1-row INSERT, -c 1, avg latency", _n(pg.get(1, {}).get("latency_avg_ms"), " ms")),
            ("  answered 2xx; errors; client launch lag (max)",
             f"{o['ok']} of {o['scheduled']}; {o['errors'] or 0}; {_n(o['client_max_launch_lag_ms'], ' ms')}",
             "", ""),
        ]
    if c:
        out.append(("# Ceilings alone (same PostgreSQL, intake stopped)", "", "", ""))
        out += pgbench_rows(c)
        for m in c.get("minimal_api", []):
            out.append((f"FastAPI+asyncpg INSERT, 1 worker, {m['concurrency']} in flight",
                        _n(m["rate_per_s"], " req/s"), "p50 / p99", _ms(m["http_latency"], "p50", "p99")))
            out.append(("  same client, no-op endpoint (no database)", _n(m["noop_rate_per_s"], " req/s"),
                        "p50 / p99", _ms(m["noop_http_latency"], "p50", "p99")))
    return out


def _profile_lines(p: dict | None, top: int = 12) -> list[str]:
    if not p:
        return []
    lines = [f"py-spy on intake: {p['samples']} on-CPU samples, {p['requests']} cases at {p['concurrency']} in "
             f"flight, {_n(p['rate_per_s'])} cases/s while sampled; intake used {_n(p['intake_cpu_pct_of_one_core'])} "
             f"% of one core. Raw stacks: {p['file']}",
             "SQLAlchemy's asyncio layer runs in greenlets, whose stacks start at e.g. Session.execute: "
             "inclusive shares of the callers (services/intake, fastapi) undercount; self shares are exact."]
    return lines + section_lines(p, top)


def render(r: dict) -> str:
    lines = table_lines(rows(r), HEADER)
    t = targets(r)
    tw = [max(len(row[i]) for row in t) for i in range(2)]
    lines += ["", "Targets (issue 3; information, not a test)"]
    lines += [f"  {a.ljust(tw[0])}  {b.ljust(tw[1])}  {c}" for a, b, c in t]
    lines += ["", *_cpu_lines(r.get("cpu") or {}), "", *_profile_lines(r.get("profile")), "",
              *_machine_lines(r.get("machine") or {})]
    return "\n".join(lines)
