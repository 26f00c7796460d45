"""The `python -m bench deadlines` table: the empty scan, due bursts drained by one and two scanner
processes, each beside its ceiling from the same run; the plans, CPU per process, the profile."""
from __future__ import annotations

from bench.profile import section_lines
from bench.report import HEADER, _line, _machine_lines, _ms, _n, pgbench_rows, table_lines

SCAN_INTERVAL_S = 5.0  # ReferralSettings.deadline_scan_s: how often an idle service scans


def _k(n: int) -> str:
    return f"{n:,}"


def _per_step(d: dict) -> str:
    return f"{_small(d.get('pg_commits_per_item'))} / {_small(d.get('pg_wal_fsyncs_per_item'))}"


def _once(d: dict) -> str:
    o = d["once"]
    return (f"{_k(o['referrals_with_event'])} of {_k(o['expected'])}, {o['duplicates']} duplicates, "
            f"{len(d['errors'])} errors")


def _small(x) -> str:
    """Tiny per-scan figures (ms of CPU, shares of a core) keep their digits."""
    if x is None:
        return "-"
    return f"{x:.3f}" if abs(x) < 1 else _n(x)


def empty_rows(r: dict) -> list[tuple[str, str, str, str]]:
    e, c = r.get("empty") or {}, r.get("ceilings") or {}
    if not e:
        return []
    fresh, ld = e["fresh"], r.get("load") or {}
    plan, raw = fresh["explain"], c.get("raw_empty") or {}
    cpu_ms = (fresh.get("scanner_cpu_ms_per_scan") or 0) + (fresh.get("postgres_cpu_ms_per_scan") or 0)
    out = [
        (f"# Empty scan: fire_due at T0 with nothing due, {_k(ld.get('open', 0))} open referrals, "
         f"{_k(fresh['scans'])} scans back to back", "", "", ""),
        ("empty scan p50 / p99 / max (fresh, after VACUUM ANALYZE)", _ms(fresh["ms"], "p50", "p99", "max"),
         "same SELECT in plain asyncpg (BEGIN, SELECT, ROLLBACK)", _ms(raw.get("ms"), "p50", "p99", "max")),
        ("  plan uses ix_referrals_due (custom / generic plan)",
         " / ".join("yes" if plan[m]["uses_due_index"] else "NO" for m in ("custom", "generic")),
         "  buffers; execution time (custom plan)",
         f"{plan['custom']['buffers'] or '-'}; {plan['custom']['execution'] or '-'}"),
        ("  CPU per scan: scanner / PostgreSQL",
         f"{_small(fresh.get('scanner_cpu_ms_per_scan'))} / {_small(fresh.get('postgres_cpu_ms_per_scan'))} ms",
         f"  at one scan every {SCAN_INTERVAL_S:g} s: share of one core",
         f"{_small(100 * cpu_ms / (SCAN_INTERVAL_S * 1000))} %"),
        ("  PostgreSQL commits / rollbacks / WAL fsyncs per scan",
         f"{_small(fresh.get('pg_commits_per_item'))} / {_small(fresh.get('pg_rollbacks_per_item'))} / "
         f"{_small(fresh.get('pg_wal_fsyncs_per_item'))}", "", ""),
    ]
    for label, key in (("after the bursts (moved timers' dead index entries)", "after bursts"),
                       ("after VACUUM", "after VACUUM")):
        if d := e.get(key):
            p = d["explain"]["custom"]
            out.append((f"{label}: p50 / p99 / max", _ms(d["ms"], "p50", "p99", "max"),
                        "  first scan's buffers; execution time", f"{p['buffers'] or '-'}; {p['execution'] or '-'}"))
    return out


def _drain_pair(label: str, b: dict, one: dict | None = None) -> list[tuple[str, str, str, str]]:
    rm, es = b["remind"], b["escalate"]
    scanners = rm["scanners"]
    right = (lambda d, what: (f"  1 scanner, {_k(d['expected'])} {what}", _n(d["steps_per_s"], " steps/s"))
             ) if one else None
    out = [
        (f"{label}{_k(b['size'])} reminders", _n(rm["steps_per_s"], " steps/s"),
         *(right(one["remind"], "reminders") if one else ("", ""))),
        ("  ms per batch of 100 p50 / p99 / max", _ms(rm["batch_ms"], "p50", "p99", "max"), "", ""),
        ("  PostgreSQL commits / WAL fsyncs per step", _per_step(rm), "", ""),
        ("  fired exactly once (outbox events per referral)", _once(rm), "", ""),
        (f"{label}{_k(b['size'])} escalations (a new referral each)", _n(es["steps_per_s"], " steps/s"),
         *(right(one["escalate"], "escalations") if one else ("", ""))),
        ("  ms per batch of 100 p50 / p99 / max", _ms(es["batch_ms"], "p50", "p99", "max"), "", ""),
        ("  PostgreSQL commits / WAL fsyncs per step", _per_step(es), "", ""),
        ("  fired exactly once; new referrals one level up",
         f"{_once(es)}; {_k(es.get('made_referrals') or 0)}", "", ""),
    ]
    if scanners > 1:
        out.insert(1, ("  steps per scanner (reminders / escalations)",
                       f"{' + '.join(_k(x) for x in rm['steps_per_scanner'])} / "
                       f"{' + '.join(_k(x) for x in es['steps_per_scanner'])}", "", ""))
    return out


def burst_rows(r: dict) -> list[tuple[str, str, str, str]]:
    bursts, c = r.get("bursts") or [], r.get("ceilings") or {}
    if not bursts:
        return []
    pg = {p["clients"]: p for p in c.get("pgbench", [])}
    raw, rawo = c.get("raw") or {}, c.get("raw_outbox") or {}
    out = [("# Due bursts: one scanner process, fire_due(limit=100) in a loop until a batch fires nothing", "", "",
            "")]
    for b in bursts:
        out += _drain_pair("", b)
    # The ceilings beside the largest burst's rows (the first four and the escalation line).
    big = len(out) - 8
    side = [
        (f"raw SELECT + 1 UPDATE per batch (asyncpg), {_k(raw.get('steps', 0))}",
         _n(raw.get("steps_per_s"), " steps/s")),
        ("  raw ms per batch p50 / p99 / max", _ms(raw.get("batch_ms"), "p50", "p99", "max")),
        ("  raw commits / WAL fsyncs per step", _per_step(raw) if raw else "-"),
        ("pgbench 1-row INSERT, -c 1", _n(pg.get(1, {}).get("commits_per_s"), " commits/s")),
        (f"raw + outbox rows + NOTIFY, {_k(rawo.get('steps', 0))}", _n(rawo.get("steps_per_s"), " steps/s")),
        ("  raw + outbox ms per batch p50 / p99 / max", _ms(rawo.get("batch_ms"), "p50", "p99", "max")),
        ("  raw + outbox commits / WAL fsyncs per step", _per_step(rawo) if rawo else "-"),
        ("pgbench 1-row INSERT, -c 8", _n(pg.get(8, {}).get("commits_per_s"), " commits/s")),
    ]
    if raw or pg:
        for i, (label, value) in enumerate(side):
            row = out[big + i]
            out[big + i] = (row[0], row[1], label, value)
    return out


def concurrent_rows(r: dict) -> list[tuple[str, str, str, str]]:
    b = r.get("concurrent")
    if not b:
        return []
    same = [x for x in r.get("bursts") or [] if x["size"] == b["size"]]
    one = same[0] if same else max(r.get("bursts") or [None], key=lambda x: x["size"] if x else 0)
    return [("# Two scanner processes draining one burst together (two replicas), then its escalations", "", "",
             ""), *_drain_pair("2 scanners, ", b, one)]


def ceiling_rows(r: dict) -> list[tuple[str, str, str, str]]:
    c = r.get("ceilings") or {}
    if not c:
        return []
    out = [("# Ceilings alone (same PostgreSQL, same table; scanners idle)", "", "", "")]
    out += pgbench_rows(c)
    for key, label in (("raw", "raw SELECT ... SKIP LOCKED + 1 UPDATE per batch"),
                       ("raw_outbox", "  the same + 1 outbox INSERT (100 rows) + pg_notify")):
        if d := c.get(key):
            out.append((f"{label}, {_k(d['steps'])} steps", _n(d["steps_per_s"], " steps/s"),
                        "ms per batch p50 / p99", _ms(d["batch_ms"], "p50", "p99")))
    if d := c.get("raw_empty"):
        out.append((f"raw empty scan (BEGIN, SELECT, ROLLBACK), {_k(d['scans'])} scans",
                    _ms(d["ms"], "p50", "p99", "max"), "", ""))
    return out


def rows(r: dict) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    if ld := r.get("load"):
        out.append((f"# Load: {_k(ld['rows'])} referrals, {_k(ld['open'])} open (reminders over "
                    f"{_n(r['args']['window_hours'])} h after T0) and {_k(ld['acknowledged'])} acknowledged, "
                    f"{_k(ld['units'])} units, {ld['provinces']} provinces", "", "", ""))
        out.append(("table with indexes / ix_referrals_due", f"{_n(ld['table_and_indexes_mb'])} / "
                    f"{_n(ld['due_index_mb'])} MB", "  load: matching; INSERT ... SELECT; VACUUM",
                    f"{_n(ld['matching_s'])}; {_n(ld['insert_s'])}; {_n(ld['vacuum_s'])} s"))
    return out + empty_rows(r) + burst_rows(r) + concurrent_rows(r) + ceiling_rows(r)


def notes(r: dict) -> list[str]:
    out = []
    drains = [(f"{b['size']:,} {kind}", b[kind]) for b in [*(r.get("bursts") or []), *(
        [r["concurrent"]] if r.get("concurrent") else [])] for kind in ("remind", "escalate")]
    for label, d in drains:
        if not d.get("as_expected"):
            o = d["once"]
            out.append(f"NOTE: {label} ({d['scanners']} scanner(s)): fired {d['reminders']} reminders and "
                       f"{d['escalations']} escalations for {d['expected']} due; {o['duplicates']} duplicates, "
                       f"{o['missing']} missing")
        if d.get("errors"):
            out.append(f"NOTE: {label}: {len(d['errors'])} failed batches (retried, as deadline_worker does): "
                       f"{d['errors'][0].splitlines()[0]}")
        if d.get("autovacuum_runs") or d.get("autoanalyze_runs"):
            out.append(f"NOTE: {label}: autovacuum ran {d['autovacuum_runs']} / autoanalyze "
                       f"{d['autoanalyze_runs']} time(s) on referrals during the drain")
    for phase, c in (r.get("cpu") or {}).items():
        if (c.get("others_busy_pct") or 0) > 10:
            out.append(f"NOTE: {phase}: processes outside the bench used {c['others_busy_pct']} % of the cores")
    for label, d in (r.get("empty") or {}).items():
        if d.get("fired"):
            out.append(f"NOTE: empty scan ({label}) fired {d['fired']} steps: something was due")
    return out


def cpu_lines(cpu: dict) -> list[str]:
    """One row per phase: CPU ms per step (per scan for the empty ones) of each process."""
    if not cpu:
        return []
    names = sorted({n for c in cpu.values() for n in c["per_process"]},
                   key=lambda n: -sum(c["per_process"].get(n, {}).get("cpu_s", 0) for c in cpu.values()))
    head = ["CPU ms per step (per scan when empty)", *names, "total", "busy %", "others %"]
    table = [[phase, *(_small((c["per_process"].get(n) or {}).get("ms_per_item")) for n in names),
              _small(c["total_cpu_s"] * 1000 / c["items"] if c["items"] else None), _n(c["machine_busy_pct"]),
              _n(c.get("others_busy_pct"))] for phase, c in cpu.items()]
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]
    return [_line(head, widths), _line(["-" * w for w in widths], widths), *(_line(row, widths) for row in table),
            "busy %: of all cores, the processes above; others %: processes outside them (this VM is shared)"]


def plan_lines(r: dict) -> list[str]:
    out = []
    plans = [(f"empty scan at T0 ({label})", d["explain"]) for label, d in (r.get("empty") or {}).items()]
    if r.get("explain_burst"):
        plans.insert(1, (f"a full batch, at the clock of the largest burst ({r['bursts'][-1]['size']:,} due)",
                         r["explain_burst"]))
    for label, p in plans:
        out += [f"EXPLAIN (ANALYZE, BUFFERS) of fire_due's SELECT, {label}; custom plan:",
                *(f"  {ln}" for ln in p["custom"]["plan"]),
                f"  generic plan: {p['generic']['scan']}; buffers {p['generic']['buffers']}; "
                f"{p['generic']['execution']}", ""]
    return out


def profile_lines(p: dict | None, top: int = 8) -> list[str]:
    if not p:
        return []
    out = []
    for kind, d in p.items():
        out += [f"py-spy on the scanner, {d['steps']:,} {'reminders' if kind == 'remind' else 'escalations'}: "
                f"{d['samples']} on-CPU samples, {_n(d['steps_per_s'])} steps/s while sampled, the scanner at "
                f"{_n(d['scanner_cpu_pct_of_one_core'])} % of one core. Raw stacks: {d['file']}",
                "", "  by what the code does, inclusive"]
        out += [f"  {x['pct']:5.1f} %  {x['what']}" for x in d["focus"]]
        out += section_lines(d, top) + [""]
    return out


def render(r: dict) -> str:
    lines = table_lines(rows(r), HEADER)
    lines += [*notes(r), "", *plan_lines(r), *cpu_lines(r.get("cpu") or {}), "",
              *profile_lines(r.get("profile")), *_machine_lines(r.get("machine") or {})]
    return "\n".join(lines)
