"""Plain-text table (each figure beside its ceiling) and the JSON results file."""
from __future__ import annotations

import json
from pathlib import Path

from bench.profile import section_lines

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
        first = ", ".join(f"{ch} {n}" for ch, n in sorted((t.get("first_by_channel") or {}).items())) or "-"
        out += [
            (f"# Throughput: closed loop, {t['reports']} reports, {t['concurrency']} in flight", "", "", ""),
            ("intake accepted (HTTP 201)", _n(t["intake_rate_per_s"], " /s"),
             "minimal FastAPI+asyncpg INSERT, same client", api_rate),
            ("  POST /cases p50 / p99", _ms(t["http_latency"], "p50", "p99"),
             "  minimal endpoint p50 / p99", _ms(api.get("http_latency"), "p50", "p99")),
            ("end-to-end (reports/s until the last first message)", _n(t["e2e_rate_per_s"], " /s"),
             "pgbench 1-row INSERT, -c 8", _n(pg.get(8, {}).get("commits_per_s"), " commits/s")),
            ("  reports that reached an agency", f"{t['reached']} of {t['accepted']} in {t['e2e_seconds']} s",
             "Kafka produce (300 B, acks=all)", _n(kafka.get("produce_per_s"), " msg/s")),
            ("  first message by channel", first, "Kafka consume", _n(kafka.get("consume_per_s"), " msg/s")),
            ("  report->first message p50 / p99 (saturated)", _ms(t["saturated_latency"], "p50", "p99"), "", ""),
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
    """The whole printed report of `python -m bench`: closed loop and ceilings, the open-loop stages, the
    maximum sustainable rate, ratios, targets, hops, CPU and memory per process, the machine."""
    table = rows(r)
    lines = table_lines(table, HEADER) if table else []
    lines += ["", *stage_lines(r), *sustainable_lines(r), "", *ratio_lines(r.get("ratios") or []), "",
              *target_lines(r.get("targets") or []), *_notes(r), "",
              *_hop_lines(_hops_shown(r)), "", *_event_lines(r),
              *_stage_cpu_lines(r), "", *_memory_lines(r), "",
              *_cpu_lines(r.get("cpu") or {}), *_idle_lines(r.get("cpu_idle")), "",
              *_profile_lines(r.get("profiled_stage")), *_machine_lines(r.get("machine") or {})]
    return "\n".join(lines)


def _profile_lines(s: dict | None, top: int = 10) -> list[str]:
    """The profiled stage (apart from the verdict): its figures and where each sampled process's CPU went."""
    if not s:
        return []
    low = bool(s.get("missing"))
    lines = [f"Profiled stage (py-spy attached; not in the verdict): {_rate(s['rate_per_s'])}/s for "
             f"{s['duration_s']:g} s: intake {_n(s.get('intake_achieved_per_s'))}/s, agencies reached "
             f"{_n(s.get('delivered_achieved_per_s'))}/s, report->first message p50 / p99 "
             f"{_p(s['first_message_latency'], 'p50', low)} / {_p(s['first_message_latency'], 'p99', low)} ms"]
    for name, prof in (s.get("profiles") or {}).items():
        used = (s["cpu_load"]["per_process"].get(name) or {}).get("cpu_s")
        busy = f"{100 * used / s['cpu_load']['wall_s']:.0f} % of one core" if used and s["cpu_load"]["wall_s"] else "-"
        lines += ["", f"py-spy on {name}: {prof['samples']} on-CPU samples, {busy} while the load ran. "
                      f"Raw stacks: {prof['file']}"]
        lines += section_lines(prof, top)
    return lines + [""]


def _rate(x: float | None) -> str:
    """An offered rate as it was asked for: 50, 137.5."""
    return "-" if x is None else f"{x:g}"


def _p(summary: dict | None, key: str, lower_bound: bool = False) -> str:
    if not summary or not summary.get("n"):
        return "-"
    return ("≥" if lower_bound else "") + _n(summary[f"{key}_ms"])


def stage_lines(r: dict) -> list[str]:
    """One line per open-loop stage, slowest first; the verdict says which condition failed."""
    stages = sorted(r.get("stages") or [], key=lambda s: s["rate_per_s"])
    if not stages:
        return []
    head = ("offered /s", "s", "sent", "intake /s", "reached /s", "POST p50 / p99 ms",
            "report->first msg p50 / p99 ms", "missing", "errors", "first by", "verdict")
    table = []
    for s in stages:
        low = bool(s.get("missing"))
        first = " ".join(f"{ch} {n}" for ch, n in sorted((s.get("first_by_channel") or {}).items())) or "-"
        table.append((_rate(s["rate_per_s"]) + (" (search)" if s.get("search") else ""), f"{s['duration_s']:g}",
                      str(s["scheduled"]), _n(s.get("intake_achieved_per_s")), _n(s.get("delivered_achieved_per_s")),
                      f"{_p(s['http_latency'], 'p50')} / {_p(s['http_latency'], 'p99')}",
                      f"{_p(s['first_message_latency'], 'p50', low)} / {_p(s['first_message_latency'], 'p99', low)}",
                      str(s.get("missing", "-")), str(sum((s.get("errors") or {}).values())), first,
                      "holds" if not s.get("misses") else "MISS: " + "; ".join(s["misses"])))
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]
    return ["Open loop at fixed offered rates (latency from each report's scheduled send; ≥: a lower bound, "
            "some reports never reached an agency)",
            _line(head, widths), _line(tuple("-" * w for w in widths), widths), *(_line(row, widths) for row in table)]


def sustainable_lines(r: dict) -> list[str]:
    sus = r.get("sustainable")
    if not sus:
        return []
    b = sus["bounds"]
    rule = (f"POST /cases p99 <= {b['intake_p99_ms']:g} ms, report->first message p99 <= {b['message_p99_ms']:g} ms, "
            f"intake answers and first messages >= {100 * b['min_achieved']:g} % of the offered rate, "
            "no error, no report missing; every slower stage too")
    best = sus["rate_per_s"]
    lines = [f"maximum sustainable rate: {'none of the stages' if best is None else f'{_rate(best)} reports/s'}"
             + (f" (first miss at {_rate(sus['first_miss_per_s'])}/s)" if sus.get("first_miss_per_s") else ""),
             f"  rule: {rule}"]
    if sus.get("held_above_a_miss"):
        lines.append(f"  NOTE: stages held above a miss ({', '.join(_rate(x) for x in sus['held_above_a_miss'])}/s): "
                     "noise, not capacity")
    return lines


def _ratio(x: float | None) -> str:
    """Three significant digits, never in exponent form: 0.0125, 0.333, 8.33, 1,070."""
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def ratio_lines(ratios: list[dict]) -> list[str]:
    if not ratios:
        return []
    head = ("our figure", "measured", "ceiling (same run)", "ceiling", "ratio")
    table = [(x["figure"], _n(x["measured"], f" {x['unit']}"), x["ceiling"],
              _n(x["ceiling_value"], f" {x.get('ceiling_unit', x['unit'])}"),
              _ratio(x["ratio"])) for x in ratios]
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]
    return ["Ratios to the ceilings (measured / ceiling)", _line(head, widths),
            _line(tuple("-" * w for w in widths), widths), *(_line(row, widths) for row in table)]


def target_lines(targets: list[dict]) -> list[str]:
    if not targets:
        return []
    width = max(len(t["target"]) for t in targets)
    verdict = {True: "MET", False: "MISSED", None: "not measured"}
    return ["Targets (issue 8; information, not a test)",
            *(f"  {t['target'].ljust(width)}  {t['measured']}  {verdict[t['met']]}" for t in targets)]


def _hops_shown(r: dict) -> dict | None:
    """The hop table of the maximum sustainable stage, else of the slowest stage."""
    stages = sorted(r.get("stages") or [], key=lambda s: s["rate_per_s"])
    best = (r.get("sustainable") or {}).get("rate_per_s")
    shown = next((s for s in stages if s["rate_per_s"] == best), stages[0] if stages else None)
    if shown is None or not shown.get("hops"):
        return None
    return shown["hops"] | ({} if "unavailable" in shown["hops"] else {"_rate": shown["rate_per_s"]})


def _event_lines(r: dict) -> list[str]:
    """What one report makes the platform publish (each a Kafka record some consumer handles in a transaction
    of its own), from the slowest stage after which the platform went idle."""
    stages = sorted(r.get("stages") or [], key=lambda s: s["rate_per_s"])
    s = next((s for s in stages if s.get("events_by_kind_per_report")), None)
    if s is None:
        return []
    by = s["events_by_kind_per_report"]
    width = max(len(k) for k in by)
    return [f"events published per report ({_rate(s['rate_per_s'])}/s stage): {_n(s['events_per_report'])}; "
            f"agency messages per report: " + ", ".join(f"{ch} {n / max(1, s['accepted']):.2f}"
                                                        for ch, n in sorted((s.get("messages") or {}).items())),
            *(f"  {k.ljust(width)}  {v:g}" for k, v in by.items()), ""]


def _stage_cpu_lines(r: dict) -> list[str]:
    """% of one core each process used while each stage's load ran, and ms of CPU per report (load + drain)."""
    stages = sorted(r.get("stages") or [], key=lambda s: s["rate_per_s"])
    if not stages:
        return []
    names = sorted({n for s in stages for n in s["cpu_load"]["per_process"]},
                   key=lambda n: -sum(s["cpu_load"]["per_process"].get(n, {}).get("cpu_s", 0) for s in stages))
    head = ["CPU: % of one core while the load ran (ms per report)", *(f"{_rate(s['rate_per_s'])}/s" for s in stages)]

    def cell(s: dict, name: str) -> str:
        load, whole = s["cpu_load"], s["cpu"]
        used = (load["per_process"].get(name) or {}).get("cpu_s")
        per = (whole["per_process"].get(name) or {}).get("ms_per_item")
        if used is None or not load["wall_s"]:
            return "-"
        return f"{100 * used / load['wall_s']:.0f} % ({_n(per)})"

    table = [[n, *(cell(s, n) for s in stages)] for n in names]
    table.append(["machine busy (% of all cores)", *(_n(s["cpu_load"]["machine_busy_pct"], " %") for s in stages)])
    table.append(["stolen by the host (% of all cores)",
                  *(_n(s["cpu_load"].get("host_steal_pct"), " %") for s in stages)])
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]
    return [_line(head, widths), _line(["-" * w for w in widths], widths), *(_line(row, widths) for row in table)]


def _memory_lines(r: dict) -> list[str]:
    """Peak RSS of each process (summed over its children) during each stage, MB; PostgreSQL's PSS too."""
    stages = sorted(r.get("stages") or [], key=lambda s: s["rate_per_s"])
    if not stages:
        return []
    names = sorted({n for s in stages for n in s["memory"]["per_process"]},
                   key=lambda n: -max(s["memory"]["per_process"].get(n, {}).get("peak_rss_mb", 0) for s in stages))
    head = ["memory: peak RSS, MB", *(f"{_rate(s['rate_per_s'])}/s" for s in stages)]
    table = [[n, *(_n((s["memory"]["per_process"].get(n) or {}).get("peak_rss_mb")) for s in stages)] for n in names]
    if "postgres" in names:
        table.append(["postgres, peak PSS (shared pages once)",
                      *(_n((s["memory"]["per_process"].get("postgres") or {}).get("peak_pss_mb")) for s in stages)])
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]
    return [_line(head, widths), _line(["-" * w for w in widths], widths), *(_line(row, widths) for row in table)]


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
    t = r.get("throughput") or {}
    notes = []
    if t and (t.get("errors") or t.get("duplicate_messages") or not t.get("drained", True)):
        notes.append(f"NOTE: closed loop: errors {t.get('errors')}, duplicate messages {t.get('duplicate_messages')}, "
                     f"every report reached an agency: {t.get('drained')}")
    for s in sorted(r.get("stages") or [], key=lambda s: s["rate_per_s"]):
        at = f"{_rate(s['rate_per_s'])}/s"
        if s.get("client_max_launch_lag_ms", 0) > 50:
            notes.append(f"NOTE: {at}: the load client launched a request up to {_n(s['client_max_launch_lag_ms'])} ms "
                         "late (machine saturated); latency still counts from the schedule.")
        if s.get("duplicate_messages"):
            notes.append(f"NOTE: {at}: {s['duplicate_messages']} duplicate messages (same case, channel, recipient).")
        if s.get("fresh_stack"):
            notes.append(f"NOTE: {at} ran on a fresh stack: the previous phase's backlog had not cleared.")
        settled = s.get("settle") or {}
        if settled.get("skipped"):
            notes.append(f"NOTE: {at}: reports were still missing after the drain timeout; the next phase got a "
                         "fresh stack without waiting for this backlog.")
        elif settled and not settled.get("settled"):
            notes.append(f"NOTE: {at}: the platform was still busy {settled.get('seconds')} s after the stage "
                         f"({settled.get('pending')} outbox rows or notifications pending, Kafka lag "
                         f"{settled.get('kafka_lag')}, stack at {settled.get('busy_pct')} % of the cores).")
    return notes


def _hop_lines(hops: dict | None) -> list[str]:
    """One open-loop stage, hop by hop (from the services' timestamps)."""
    if not hops:
        return []
    if "unavailable" in hops:
        return [f"per-hop breakdown unavailable: {hops['unavailable']}"]
    hops = dict(hops)
    at = hops.pop("_rate", None)
    head = ["report->first message, hop by hop" + (f" (open loop, {_rate(at)}/s)" if at is not None else ""),
            "p50", "p90", "p99"]
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
