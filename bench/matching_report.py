"""The `python -m bench matching` table: the engine alone, referral end to end, their ceilings, where the
time goes (CPU per process, cProfile of the engine, py-spy of the service)."""
from __future__ import annotations

from datetime import datetime

from bench.profile import section_lines
from bench.report import HEADER, _cpu_lines, _machine_lines, _n, pgbench_rows, table_lines


def _us(d: dict | None, *keys: str) -> str:
    if not d:
        return "-"
    return " / ".join(_n(d[k]) for k in keys) + " µs"


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%a %H:%M Asia/Ho_Chi_Minh")


def rows(r: dict) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    e = r.get("engine") or {}
    if e:
        out.append((f"# Engine alone: match(), default rules ({len(e['rules'])}), {e['units']:,} units, "
                    f"{e['cases']} cases over {e['communes']:,} of {e['of_communes']:,} communes, in-process", "", "",
                    ""))
        for label, t in e["runs"].items():
            out += [
                (f"by {label} ({_when(t['now'])}), median of {t['rounds']} rounds", _n(t["rate_per_s"], " cases/s"),
                 "µs per case p50 / p99 / max", _us(t["us_per_case"], "p50", "p99", "max")),
                ("  rounds, slowest to fastest", " / ".join(_n(x) for x in t["rate_per_s_rounds"]) + " cases/s",
                 "", ""),
                ("  referrals per case; cases with an unmatched rule",
                 f"{_n(t['referrals_per_case'])}; {_n(t['cases_with_unmatched_rule_pct'], ' %')}",
                 "  trace steps; closed-now skips per case",
                 f"{_n(t['trace_steps_per_case'])}; {_n(t['closed_now_skips_per_case'])}"),
                ("  other processes busy; host steal (% of all cores)",
                 f"{_n(t['others_busy_pct_of_all_cores'], ' %')}; {_n(t['host_steal_pct_of_all_cores'], ' %')}",
                 "", ""),
            ]
        d = e["directory"]
        out += [
            ("directory_index(units()): first / best of 3", f"{_n(d['first_ms'])} / {_n(d['best_ms'])} ms",
             "  index alone, over built units (best of 3)", _n(d["index_only_best_ms"], " ms")),
            (f"  {d['units']:,} units + index in memory (tracemalloc)", _n(d["memory_mb"], " MB"),
             "  bench process RSS after loading", _n(d["process_rss_mb"], " MB")),
        ]
    s, c = r.get("service"), r.get("ceilings") or {}
    pg = {p["clients"]: p for p in c.get("pgbench", [])}
    kafka = c.get("kafka") or {}
    if s:
        day = (e.get("runs") or {}).get("day") or {}
        out += [
            (f"# Through the service: {s['cases']} CaseReported -> intake.cases.v1 -> referral (consumer, matching, "
             "PostgreSQL, outbox relay)", "", "", ""),
            ("referral: cases/s until every case had its referrals", _n(s["rate_per_s"], " cases/s"),
             "engine alone, same mix, by day", _n(day.get("rate_per_s"), " cases/s")),
            ("  every referral made / every event published after",
             f"{_n(s['referrals_done_s'])} / {_n(s['outbox_drained_s'])} s",
             f"Kafka produce, same records, {kafka.get('partitions', '-')} partitions",
             _n(kafka.get("produce_per_s"), " rec/s")),
            ("  cases/s over each fifth of the batch", " / ".join(_n(x) for x in s.get("rate_by_fifth_per_s") or []),
             "", ""),
            ("  produce loop while referral consumed", _n(s["produce_per_s"], " rec/s"),
             "Kafka consume, same records", _n(kafka.get("consume_per_s"), " rec/s")),
            ("  referrals per case; ReferralCreated published",
             f"{_n(s['referrals_per_case'])}; {_n(s['events_per_s'], ' /s')}",
             "pgbench 1-row INSERT, -c 1", _n(pg.get(1, {}).get("commits_per_s"), " commits/s")),
            ("  PostgreSQL transactions / WAL fsyncs per case",
             f"{_n(s['pg_transactions_per_case'])} / {_n(s['pg_wal_fsyncs_per_case'])}",
             "  pgbench -c 1 avg latency", _n(pg.get(1, {}).get("latency_avg_ms"), " ms")),
            ("  cases never referred; events unpublished at the end",
             f"{s['missing_cases']}; {s['outbox_backlog_at_end']}", "", ""),
            ("  autovacuum / autoanalyze runs on referral's tables",
             f"{s.get('autovacuum_runs', '-')} / {s.get('autoanalyze_runs', '-')}", "", ""),
        ]
    if db := r.get("directory_from_db"):
        out.append((f"directory from PostgreSQL (repository.load, {db['units']:,} rows): first / best of 3",
                    f"{_n(db['first_ms'])} / {_n(db['best_ms'])} ms", "", ""))
    if c:
        out.append(("# Ceilings alone (same PostgreSQL, same broker, referral stopped)", "", "", ""))
        out += pgbench_rows(c)
        if kafka:
            size = (s or {}).get("event_bytes_avg")
            out.append((f"Kafka {kafka['records']} records ({_n(size)} B), {kafka['partitions']} partitions: "
                        "produce / consume", f"{_n(kafka['produce_per_s'])} / {_n(kafka['consume_per_s'])} rec/s",
                        "", ""))
    return out


def _mix_lines(e: dict) -> list[str]:
    if not e:
        return []
    m = e["mix"]
    u = m["urgency_pct"]
    return [f"case mix ({e['cases']} cases, rules {e['rules_version']}): urgency normal {u['normal']} % / high "
            f"{u['high']} % / emergency {u['emergency']} %; child with needs {m['child_with_needs_pct']} %; any "
            f"needs {m['any_needs_pct']} %; at sea {m['at_sea_pct']} %; abroad {m['abroad_pct']} %; moving across "
            f"a border {m['across_border_pct']} %; danger now {m['immediate_danger_pct']} %; consent "
            f"{m['consent_pct']} %; {m['bytes_per_event']} B of JSON per event"]


def _cprofile_lines(p: dict | None, top: int = 10) -> list[str]:
    if not p:
        return []
    lines = [f"cProfile of the engine, {p['cases']} cases by day ({p['profiled_s']} s under the profiler, which "
             "inflates small calls): share of the profiled loop's wall time"]
    for title, key in (("by function, self", "self"), ("project functions, inclusive", "inclusive")):
        lines += ["", f"  {title}"]
        lines += [f"  {x['pct']:5.1f} %  {x['what']}  ({x['calls']:,} calls)" for x in p[key][:top]]
    return lines


def _profile_lines(p: dict | None, top: int = 12) -> list[str]:
    if not p:
        return []
    lines = [f"py-spy on referral: {p['samples']} on-CPU samples, {p['cases']} events, {_n(p['rate_per_s'])} "
             f"cases/s while sampled; referral used {_n(p['referral_cpu_pct_of_one_core'])} % of one core. "
             f"Raw stacks: {p['file']}",
             "SQLAlchemy's asyncio layer runs in greenlets, whose stacks start at e.g. Session.execute: "
             "inclusive shares of the callers undercount; self shares are exact."]
    if p.get("focus"):
        lines += ["", "  by what the code does, inclusive"]
        lines += [f"  {x['pct']:5.1f} %  {x['what']}" for x in p["focus"]]
    return lines + section_lines(p, top)


def render(r: dict) -> str:
    lines = table_lines(rows(r), HEADER)
    cpu = r.get("cpu") or {}
    others = [f"{phase} {_n(c.get('others_busy_pct'), ' %')}" for phase, c in cpu.items()]
    lines += ["", *_mix_lines(r.get("engine") or {}), "", *_cpu_lines(cpu, "case"),
              *([f"other processes on this machine, outside the stack (% of all cores): {'; '.join(others)}"]
                if others else []), "",
              *_cprofile_lines((r.get("engine") or {}).get("cprofile")), "", *_profile_lines(r.get("profile")), "",
              *_machine_lines(r.get("machine") or {})]
    return "\n".join(lines)
