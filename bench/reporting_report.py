"""The `python -m bench reporting` table: projection throughput, rebuild time and query latency, each figure
beside a ceiling from the same run and their ratio; then CPU per event, the profile and the machine."""
from __future__ import annotations

from bench.profile import section_lines
from bench.report import _cpu_lines, _idle_lines, _machine_lines, _n, pgbench_rows, table_lines

HEADER = ("figure", "measured", "ceiling (same run)", "value", "ratio")


def _ratio(measured, ceiling) -> str:
    if not measured or not ceiling:
        return ""
    return f"{100 * measured / ceiling:.0f} %"


def _s(x) -> str:
    return "-" if x is None else f"{x:,.1f} s"


def _ms(s: dict | None, keys=("p50", "p99")) -> str:
    if not s or not s.get("n"):
        return "-"
    return " / ".join(_n(s.get(f"{k}_ms")) for k in keys) + " ms"


def _per(pg: dict) -> str:
    return (f"{_n(pg.get('events_per_transaction'))}; {_n(pg.get('rows_inserted_per_event'))} / "
            f"{_n(pg.get('rows_updated_per_event'))}; {_n(pg.get('wal_fsyncs_per_1000_events'))}")


PG_ROW = "  PostgreSQL: events per transaction; rows inserted / updated per event; WAL fsyncs per 1,000 events"
CORE_ROW = "  reporting process CPU (one Python process: 100 % is all it can use)"


def _pct(x) -> str:
    return "-" if x is None else f"{x:.0f} % of one core"


def _kinds(kinds: dict, total: int) -> str:
    return ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in kinds.items() if total) or "-"


def projection_rows(p: dict, c: dict, title: str) -> list[tuple]:
    pg1 = {x["clients"]: x for x in c.get("pgbench", [])}.get(1, {})
    batch, raw, kafka = c.get("pgbench_batch") or {}, c.get("consume_topics") or {}, c.get("kafka") or {}
    return [
        (f"# {title}: {p['events']:,} events ({_kinds(p.get('kinds') or {}, p['events'])})", "", "", "", ""),
        ("events/s, first produce to every position", _n(p["rate_per_s"], " /s"),
         "the topics read back raw, one consumer", _n(raw.get("consume_per_s"), " rec/s"),
         _ratio(p["rate_per_s"], raw.get("consume_per_s"))),
        ("  steady (middle 80 % of the events)", _n(p["steady_rate_per_s"], " /s"),
         "pgbench 200 1-row INSERTs per transaction, -c 1", _n(batch.get("rows_per_s"), " rows/s"),
         _ratio(p["steady_rate_per_s"], batch.get("rows_per_s"))),
        ("  after the produce ended", _n(p["rate_after_produce_per_s"], " /s"),
         "pgbench 1-row INSERT, -c 1", _n(pg1.get("commits_per_s"), " commits/s"),
         _ratio(p["rate_after_produce_per_s"], pg1.get("commits_per_s"))),
        ("  every event applied after; applied when the produce ended",
         f"{_s(p['all_applied_s'])}; {_n(p.get('applied_when_produce_ended'))}", "", "", ""),
        *_tail_rows(p),
        ("  produce (one producer, the relay's settings)", f"{_n(p['produce_per_s'], ' /s')} ({_s(p['produce_s'])})",
         "Kafka produce, raw, sample of the mix", _n(kafka.get("produce_per_s"), " rec/s"),
         _ratio(p["produce_per_s"], kafka.get("produce_per_s"))),
        (PG_ROW, _per(p.get("pg") or {}), "", "", ""),
        (CORE_ROW, _pct(p.get("reporting_cpu_pct_of_one_core")), "", "", ""),
    ]


def _tail_rows(p: dict) -> list[tuple]:
    """The first 99 % against the last 1 %, and the longest time nothing moved: this broker, retaining a
    million records, sometimes answers a fetch with nothing for a while."""
    if "p99_applied_s" not in p:
        return []
    parts = p.get("partitions") or {}
    out = [("  to 99 %: events/s; the last 1 % took; longest time nothing moved",
            f"{_n(p.get('rate_to_p99_per_s'), ' /s')}; {_s(p.get('tail_s'))}; {_s(p.get('longest_stall_s'))}",
            "", "", "")]
    if parts:
        out.append((f"  {parts['partitions']} partitions' last batch: first / median / last",
                    f"{_s(parts.get('first_done_s'))} / {_s(parts.get('median_done_s'))} / "
                    f"{_s(parts.get('last_done_s'))}", "broker end offsets / positions, sum",
                    f"{_n(parts.get('broker_end_offsets_sum'))} / {_n(parts.get('positions_sum'))}", ""))
    return out


def rebuild_rows(b: dict, p: dict | None, c: dict) -> list[tuple]:
    raw = c.get("consume_topics") or {}
    nudged = b.get("nudged_at_s")
    return [
        (f"# Rebuild: request_rebuild, then every topic replayed by a new consumer group ({b['events']:,} events)",
         "", "", "", ""),
        ("rebuild time, request to every position", _s(b["all_applied_s"]), "the first projection of them",
         _s((p or {}).get("all_applied_s")), _ratio(b["all_applied_s"], (p or {}).get("all_applied_s"))),
        ("  as wait_caught_up measured it (1 s polls, the broker's end offsets)", _s(b["wait_caught_up_s"]), "", "",
         ""),
        ("  replay began after (projections emptied, group joined); replay; events/s",
         f"{_s(b['join_s'])}; {_s(b['replay_s'])}; {_n(b['replay_rate_per_s'], ' /s')}",
         "the topics read back raw, one consumer", _n(raw.get("consume_per_s"), " rec/s"),
         _ratio(b["replay_rate_per_s"], raw.get("consume_per_s"))),
        ("  steady replay (middle 80 %)", _n(b["steady_rate_per_s"], " /s"), "", "", ""),
        *_tail_rows(b),
        ("  projections emptied (request_rebuild)", _s(b["request_s"]), "", "", ""),
        ("  started by itself, or woken by an event",
         "by itself" if nudged is None else f"nothing after {_s(nudged)}: woken by an event", "", "", ""),
        (PG_ROW, _per(b.get("pg") or {}), "", "", ""),
        (CORE_ROW, _pct(b.get("reporting_cpu_pct_of_one_core")), "", "", ""),
    ]


def query_rows(q: dict, checks: dict) -> list[tuple]:
    inp, sql = q.get("in_process") or {}, q.get("sql") or {}
    table = inp.get("table") or {}
    out = [(f"# Queries: analyst token, closed loop, {q['concurrency']} in flight, {q['requests']} requests each "
            f"after {q['warmup']}; over {checks.get('contacts', 0):,} contacts, {checks.get('cases', 0):,} cases, "
            f"{checks.get('referrals', 0):,} referrals, {checks.get('notifications', 0):,} alerts", "", "", "", "")]
    names = (("summary", "GET /v1/stats/summary (all time), p50 / p99"),
             ("contacts_month_province", "GET /v1/stats/contacts?group=month&by=province, p50 / p99"))
    floor = (q.get("floor") or {}).get("latency")
    for key, label in names:
        r = q.get(key) or {}
        lat = r.get("latency") or {}
        out += [
            (label, _ms(lat), "the same functions in process (no HTTP)", _ms(inp.get(key)),
             _ratio(lat.get("p99_ms"), (inp.get(key) or {}).get("p99_ms"))),
            ("  answers/s; bytes; errors", f"{_n(r.get('rate_per_s'), ' /s')}; {_n(r.get('bytes'))}; "
             f"{r.get('errors') or 'none'}", f"their SQL alone, asyncpg ({(sql.get(key) or {}).get('statements')} "
             "statements)", _ms(sql.get(key)), _ratio(lat.get("p99_ms"), (sql.get(key) or {}).get("p99_ms"))),
        ]
    out += [
        (f"  suppression of the contacts table ({table.get('periods')} months x {table.get('categories')} provinces,"
         f" {_n(table.get('suppressed'))} suppressed), in process", _ms(inp.get("suppression")), "", "", ""),
        ("  the contacts SQL, EXPLAIN ANALYZE", _n((sql.get("contacts_plan") or {}).get("execution_ms"), " ms"),
         "", "", ""),
        ("floor: GET /v1/stats (auth and FastAPI, no database), p50 / p99", _ms(floor), "", "", ""),
    ]
    return out


def ceiling_rows(c: dict) -> list[tuple]:
    if not c:
        return []
    out = [("# Ceilings alone (reporting stopped; same PostgreSQL and broker)", "", "", "", "")]
    if k := c.get("consume_topics"):
        out.append((f"every record on the topics ({k['records']:,}, {k['partitions']} partitions), raw consume",
                    _n(k["consume_per_s"], " rec/s"), "read; longest wait for a record",
                    f"{_n(k.get('read'))}; {_s(k.get('longest_wait_s'))}", ""))
    if k := c.get("kafka"):
        out.append((f"Kafka {k['records']:,} records of the mix, {k['partitions']} partitions: produce / consume",
                    f"{_n(k['produce_per_s'])} / {_n(k['consume_per_s'])} rec/s", "", "", ""))
    out += pgbench_rows(c, 5)
    return out


def rows(r: dict) -> list[tuple]:
    c, checks = r.get("ceilings") or {}, r.get("checks") or {}
    out: list[tuple] = []
    if p := r.get("projection"):
        out += projection_rows(p, c, "Projection: the mix -> 4 topics -> reporting alone")
    if b := r.get("rebuild"):
        out += rebuild_rows(b, r.get("projection"), c)
    if t := r.get("topup"):
        out += projection_rows(t, c, "Contacts alone (the top-up to the query phase's contacts)")
    if q := r.get("queries"):
        out += query_rows(q, checks.get("queries") or {})
    return out + ceiling_rows(c)


def notes(r: dict) -> list[str]:
    out = []
    checks = r.get("checks") or {}
    if "rebuild_equals_projection" in checks and not checks["rebuild_equals_projection"]:
        out.append("NOTE: the rebuilt rows differ from the projected ones: "
                   f"{checks.get('projection')} vs {checks.get('rebuild')}")
    s = r.get("stream") or {}
    if s and not s.get("jsonb_text_matches_postgresql", True):
        out.append("NOTE: the payloads' text differs from PostgreSQL's jsonb::text (the relay's bytes)")
    for name in ("summary", "contacts_month_province", "floor"):
        q = (r.get("queries") or {}).get(name) or {}
        if q.get("errors"):
            out.append(f"NOTE: {name}: errors {q['errors']}")
    phases = {**(r.get("cpu") or {}), **({"queries": r["cpu_queries"]} if r.get("cpu_queries") else {})}
    for phase, cpu in phases.items():
        if (cpu.get("others_busy_pct") or 0) > 10:
            out.append(f"NOTE: {phase}: processes outside the stack used {cpu['others_busy_pct']} % of the cores")
    k = (r.get("ceilings") or {}).get("consume_topics") or {}
    if k.get("read") is not None and k["read"] < k["records"]:
        out.append(f"NOTE: the raw consume read {k['read']:,} of {k['records']:,} records before the broker stopped "
                   "answering with any for 60 s")
    for phase in ("projection", "rebuild", "topup"):
        parts = (r.get(phase) or {}).get("partitions") or {}
        if parts.get("partitions_past_broker_end"):
            out.append(f"NOTE: {phase}: {parts['partitions_past_broker_end']} partitions' positions are past the "
                       "broker's end offsets (ListOffsets): the broker under-reports them")
    if (r.get("rebuild") or {}).get("nudged_at_s") is not None:
        out.append(f"NOTE: after request_rebuild the idle consumer replayed nothing for "
                   f"{r['rebuild']['nudged_at_s']} s, until a new event arrived; the rebuild time includes that wait")
    return out


def stream_lines(r: dict) -> list[str]:
    s, code = r.get("stream") or {}, r.get("code") or {}
    if not s:
        return []
    dirty = f", uncommitted: {', '.join(code['uncommitted'])}" if code.get("uncommitted") else ""
    return [f"code: {code.get('commit')} ({code.get('subject')}){dirty}" if code else "",
            f"stream: {s['events']:,} events from {s['first']} to {s['last']}, contacts {s['contacts_share_pct']} %, "
            f"mean payload {s['mean_value_bytes']} bytes, made in {s['made_s']} s (seed {s['seed']}, case share "
            f"{s['case_share']:.4f}); payloads as jsonb::text: {s.get('jsonb_text_matches_postgresql')}",
            "  " + ", ".join(f"{k} {v:,}" for k, v in s["kinds"].items())]


def query_cpu_lines(cpu: dict | None) -> list[str]:
    if not cpu:
        return []
    per = ", ".join(f"{name} {_n(v.get('ms_per_item'))}" for name, v in cpu["per_process"].items())
    return [f"CPU ms per request in the query phase ({cpu['items']:,} requests, {_n(cpu['wall_s'])} s): {per}; "
            f"machine busy {_n(cpu['machine_busy_pct'], ' %')}"]


def load_lines(r: dict) -> list[str]:
    ld, q = r.get("load") or {}, r.get("quiet") or {}
    parts = [f"{k} {ld[k]['at']} load {' '.join(f'{x:.2f}' for x in ld[k]['loadavg'])}" for k in ("start", "end")
             if k in ld]
    phases = {**(r.get("cpu") or {}), **({"queries": r["cpu_queries"]} if r.get("cpu_queries") else {})}
    others = ", ".join(f"{phase} {_n(c.get('others_busy_pct'), ' %')}" for phase, c in phases.items())
    return [f"load: {'; '.join(parts)}; other processes before the run {q.get('others_busy_pct')} % of the cores "
            f"(waited {q.get('waited_s')} s)", f"processes outside the stack (% of all cores): {others}"]


def profile_lines(p: dict | None, top: int = 8) -> list[str]:
    if not p:
        return []
    out = []
    if x := p.get("projection"):
        out += [f"py-spy on reporting, {x['events']:,} events of the mix: {x['samples']} on-CPU samples, reporting at "
                f"{_n(x['reporting_cpu_pct_of_one_core'])} % of one core, {_n(x['reporting_cpu_ms_per_event'])} ms of "
                f"CPU per event ({_n(x['rate_per_s'])} /s while sampled). Raw stacks: {x['file']}", "",
                "  by what the code does, inclusive"]
        out += [f"  {f['pct']:5.1f} %  {f['what']}" for f in x["focus"]]
        out += section_lines(x, top) + [""]
    if x := p.get("queries"):
        out += [f"py-spy on reporting, {x['requests']} requests (summary and contacts by month and province): "
                f"{x['samples']} on-CPU samples. Raw stacks: {x['file']}", "", "  by what the code does, inclusive"]
        out += [f"  {f['pct']:5.1f} %  {f['what']}" for f in x["focus"]]
        out += section_lines(x, top) + [""]
    return out


def render(r: dict) -> str:
    lines = table_lines(rows(r), HEADER)
    lines += [*notes(r), "", *stream_lines(r), "", *_cpu_lines(r.get("cpu") or {}, "event"),
              *query_cpu_lines(r.get("cpu_queries")), *_idle_lines(r.get("cpu_idle")), *load_lines(r), "",
              *profile_lines(r.get("profile")),
              *_machine_lines(r.get("machine") or {})]
    return "\n".join(lines)
