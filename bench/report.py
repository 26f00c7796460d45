"""Plain-text table (each figure beside its ceiling) and the JSON results file."""
from __future__ import annotations

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _n(x, unit: str = "") -> str:
    if x is None:
        return "-"
    text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.1f}"
    return f"{text}{unit}"


def _ms(summary: dict | None, *keys: str) -> str:
    if not summary or not summary.get("n"):
        return "-"
    return " / ".join(_n(summary[f"{k}_ms"]) for k in keys) + " ms"


def pgbench_rows(c: dict, width: int = 4) -> list[tuple]:
    """A run's pgbench ceilings as table rows of `width` columns."""
    out = [(f"pgbench 1-row INSERT, -c {p['clients']} ({p['seconds']} s)", _n(p["commits_per_s"], " commits/s"),
            "avg latency", _n(p["latency_avg_ms"], " ms")) for p in c.get("pgbench", [])]
    if b := c.get("pgbench_batch"):
        out.append((f"pgbench {b['rows_per_transaction']} 1-row INSERTs per transaction, -c 1 ({b['seconds']} s)",
                    _n(b["rows_per_s"], " rows/s"), "commits/s", _n(b["commits_per_s"])))
    return [row + ("",) * (width - len(row)) for row in out]


def rows(r: dict) -> list[tuple[str, str, str, str]]:
    """(figure, measured, ceiling, ceiling value); a row starting with '#' is a section title."""
    c = r.get("ceilings") or {}
    pg = {p["clients"]: p for p in c.get("pgbench", [])}
    api, kafka = c.get("minimal_api") or {}, c.get("kafka") or {}
    api_rate = _n(api.get("rate_per_s"), " req/s") if api else "-"
    out: list[tuple[str, str, str, str]] = []

    if t := r.get("throughput"):
        out += [
            (f"# Throughput: closed loop, {t['reports']} reports, {t['concurrency']} in flight", "", "", ""),
            ("intake accepted (HTTP 201)", _n(t["intake_rate_per_s"], " /s"),
             "minimal FastAPI+asyncpg INSERT, same client", api_rate),
            ("  POST /cases p50 / p99", _ms(t["http_latency"], "p50", "p99"),
             "  minimal endpoint p50 / p99", _ms(api.get("http_latency"), "p50", "p99")),
            ("end-to-end (reports/s until last email)", _n(t["e2e_rate_per_s"], " /s"),
             "pgbench 1-row INSERT, -c 8", _n(pg.get(8, {}).get("commits_per_s"), " commits/s")),
            ("  emails arrived", f"{t['emails']} of {t['accepted']} in {t['e2e_seconds']} s",
             "pgbench 1-row INSERT, -c 32", _n(pg.get(32, {}).get("commits_per_s"), " commits/s")),
            ("  PostgreSQL transactions / WAL fsyncs per report",
             f"{_n(t.get('pg_transactions_per_report'))} / {_n(t.get('pg_wal_fsyncs_per_report'))}",
             "Kafka produce (300 B, acks=all)", _n(kafka.get("produce_per_s"), " msg/s")),
            ("  report->email p50 / p99 (saturated)", _ms(t["saturated_latency"], "p50", "p99"),
             "Kafka consume", _n(kafka.get("consume_per_s"), " msg/s")),
        ]
    if lat := r.get("latency"):
        k_rate = kafka.get("latency_rate_per_s")
        out += [
            (f"# Latency: open loop, {_n(lat['rate_per_s'])} reports/s for {_n(lat['duration_s'])} s", "", "", ""),
            ("report->email p50 / p90 / p99 / max", _ms(lat["e2e_latency"], "p50", "p90", "p99", "max"),
             f"Kafka produce->consume at {_n(k_rate)}/s, p50 / p99" if k_rate else "Kafka produce->consume",
             _ms(kafka.get("produce_consume_latency"), "p50", "p99")),
            (f"  missing emails after {_n(lat['drain_timeout_s'])} s drain",
             f"{lat['missing_emails']} of {lat['accepted']}",
             "  Kafka produce ack p50 / p99", _ms(kafka.get("produce_ack_latency"), "p50", "p99")),
            ("POST /cases p50 / p99 (from scheduled send)", _ms(lat["http_latency"], "p50", "p99"),
             "pgbench 1-row INSERT, -c 1, avg latency", _n(pg.get(1, {}).get("latency_avg_ms"), " ms")),
        ]
    if c:
        out.append(("# Ceilings alone (same PostgreSQL, same broker, services stopped)", "", "", ""))
        for p in c.get("pgbench", []):
            out.append((f"pgbench 1-row INSERT, -c {p['clients']} ({p['seconds']} s)",
                        _n(p["commits_per_s"], " commits/s"), "avg latency", _n(p["latency_avg_ms"], " ms")))
        if api:
            out.append((f"FastAPI+asyncpg, 1 worker, {api['concurrency']} in flight", api_rate,
                        "p50 / p99", _ms(api["http_latency"], "p50", "p99")))
            out.append(("  same client, no-op endpoint (no database)", _n(api["noop_rate_per_s"], " req/s"),
                        "p50 / p99", _ms(api["noop_http_latency"], "p50", "p99")))
        if kafka:
            out.append((f"Kafka {kafka['messages']} x {kafka['message_bytes']} B: produce / consume",
                        f"{_n(kafka['produce_per_s'])} / {_n(kafka['consume_per_s'])} msg/s",
                        f"produce->consume at {_n(kafka['latency_rate_per_s'])}/s p50 / p99",
                        _ms(kafka["produce_consume_latency"], "p50", "p99")))
    return out


def render(r: dict) -> str:
    lines = table_lines(rows(r), HEADER)
    lines += [*_notes(r), "", *_hop_lines((r.get("latency") or {}).get("hops")), "",
              *_cpu_lines(r.get("cpu") or {}), *_idle_lines(r.get("cpu_idle")), "",
              *_machine_lines(r.get("machine") or {})]
    return "\n".join(lines)


HEADER = ("figure", "measured", "ceiling (same run)", "value")


def table_lines(table: list, header: tuple) -> list[str]:
    """The rows under `header`, columns aligned; a row whose first cell starts with "#" is a heading."""
    body = [row for row in table if not row[0].startswith("#")]
    widths = [max([len(row[i]) for row in body] + [len(h)]) for i, h in enumerate(header)]
    lines = [_line(header, widths), _line(tuple("-" * w for w in widths), widths)]
    return lines + [row[0][2:] if row[0].startswith("#") else _line(row, widths) for row in table]


def _line(cells, widths) -> str:
    return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()


def _cpu_lines(cpu: dict, item: str = "report") -> list[str]:
    """CPU ms per item (report, case) and process, per phase: which process the pipeline's time goes to."""
    if not cpu:
        return []
    phases = list(cpu)
    names = sorted({n for p in cpu.values() for n in p["per_process"]},
                   key=lambda n: -sum(p["per_process"].get(n, {}).get("cpu_s", 0) for p in cpu.values()))
    head = [f"CPU ms per {item}", *phases]
    table = [[n, *(_n((cpu[p]["per_process"].get(n) or {}).get("ms_per_item")) for p in phases)] for n in names]
    table.append(["total", *(_n(sum(v["cpu_s"] for v in cpu[p]["per_process"].values()) * 1000 / cpu[p]["items"])
                             for p in phases)])
    table.append(["machine busy (% of all cores)", *(_n(cpu[p]["machine_busy_pct"], " %") for p in phases)])
    table.append(["stolen by the host (% of all cores)", *(_n(cpu[p].get("host_steal_pct"), " %") for p in phases)])
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]
    return [_line(head, widths), _line(["-" * w for w in widths], widths), *(_line(row, widths) for row in table)]


def _notes(r: dict) -> list[str]:
    t, lat = r.get("throughput") or {}, r.get("latency") or {}
    notes = []
    if t.get("e2e_rate_per_s") and lat and lat["rate_per_s"] > 0.8 * t["e2e_rate_per_s"]:
        notes.append(f"NOTE: the open-loop rate ({_n(lat['rate_per_s'])}/s) is over 80 % of the end-to-end "
                     f"throughput ({_n(t['e2e_rate_per_s'])}/s): the latency figures are mostly queueing.")
    if lat.get("client_max_launch_lag_ms", 0) > 50:
        notes.append(f"NOTE: the load client launched a request up to {_n(lat['client_max_launch_lag_ms'])} ms "
                     "late (machine saturated); latency still counts from the schedule.")
    for what, d in (("throughput", t), ("latency", lat)):
        if d and (d.get("errors") or d.get("duplicate_emails") or not d.get("drained", True)):
            notes.append(f"NOTE: {what}: errors {d.get('errors')}, duplicate emails {d.get('duplicate_emails')}, "
                         f"all emails arrived: {d.get('drained')}")
    return notes


def _hop_lines(hops: dict | None) -> list[str]:
    """The open-loop phase, hop by hop (from the services' timestamps)."""
    if not hops:
        return []
    if "unavailable" in hops:
        return [f"per-hop breakdown unavailable: {hops['unavailable']}"]
    head = ["report->email, hop by hop (open loop)", "p50", "p90", "p99"]
    table = [[label, *(_n(s[f"{k}_ms"]) for k in ("p50", "p90", "p99"))] for label, s in hops.items()]
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]

    def fmt(row: list[str]) -> str:
        return "  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:]))])

    return [fmt(head) + "  ms", fmt(["-" * w for w in widths]), *(fmt(row) for row in table)]


def _idle_lines(idle: dict | None) -> list[str]:
    if not idle:
        return []
    top = ", ".join(f"{n} {100 * v['cpu_s'] / idle['wall_s']:.0f} %" for n, v in idle["per_process"].items()
                    if v["cpu_s"] >= 0.01 and n != "bench (load client)")
    return [f"idle stack ({idle['wall_s']} s, no load): {idle['machine_busy_pct']} % of all cores "
            f"(% of one core: {top})"]


def _machine_lines(m: dict) -> list[str]:
    if not m:
        return []
    pk = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    return [f"machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB, {m['os']}",
            f"python {m['python']}; PostgreSQL {m['postgresql']} (durable); {m['tansu']}",
            f"packages: {pk}"]


def publish(results: dict, rendered: str, stamp: str, profile: Path | None = None) -> int:
    """Print a run's table, write its JSON next to the others, say where both are."""
    print(rendered)
    path = write_json(results, stamp)
    print(f"\nresults: {path}" + (f"\nprofile: {profile}" if profile is not None and profile.exists() else ""))
    return 0


def write_json(r: dict, stamp: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps(r, indent=2, ensure_ascii=False) + "\n")
    return path
