"""The `python -m bench notify` table: SMS and email throughput, emergencies under a backlog, the lifted
rate limit, each figure beside a ceiling from the same run and their ratio; then CPU per message."""
from __future__ import annotations

from bench.profile import section_lines
from bench.report import _cpu_lines, _idle_lines, _machine_lines, _n, pgbench_rows, table_lines

HEADER = ("figure", "measured", "ceiling (same run)", "value", "ratio")


def _ms3(s: dict | None, keys=("p50", "p95", "max")) -> str:
    if not s or not s.get("n"):
        return "-"
    return " / ".join(_n(s.get(f"{k}_ms")) for k in keys) + " ms"


def _ratio(measured, ceiling) -> str:
    if not measured or not ceiling:
        return ""
    return f"{100 * measured / ceiling:.0f} %"


def _s(x) -> str:
    return "-" if x is None else f"{x:,.1f} s"


LIFECYCLE = ("created", "sending", "sent", "delivered")


def _events(o: dict | None) -> str:
    per = (o or {}).get("per_message") or {}
    order = [k for k in LIFECYCLE if k in per] + sorted(k for k in per if k not in LIFECYCLE)
    return " / ".join(f"{k} {per[k]:g}" for k in order) or "-"


def _pg(p: dict) -> str:
    return f"{_n(p.get('pg_transactions_per_message'))} / {_n(p.get('pg_wal_fsyncs_per_message'))}"


def throughput_rows(p: dict, ceiling: tuple[str, float | None], limit: tuple[str, float | None], c: dict,
                    settings: dict, latency_ms: int) -> list[tuple]:
    """One phase's rows; `ceiling` and `limit`: (label, messages/s) for the rate and the steady pace."""
    unit = "SMS" if p["channel"] == "sms" else "emails"
    kafka, pg = c.get("kafka") or {}, {x["clients"]: x for x in c.get("pgbench", [])}
    sends = p.get("sends") or {}
    gw = (c.get("gateway") or {}) if p["channel"] == "sms" else (c.get("smtp") or {})
    batch = settings.get("notify_batch_size")
    # The batch bound on its own row, unless the steady pace is already beside it.
    bound = p["channel"] == "sms" and batch and latency_ms and not limit[0].startswith("NOTIFY_BATCH_SIZE")
    out = [
        (f"{unit}/s, first produce to last sent", _n(p["rate_per_s"], " /s"), ceiling[0], _n(ceiling[1], " /s"),
         _ratio(p["rate_per_s"], ceiling[1])),
        ("  dispatcher's steady pace (middle 80 % of sends)", _n(p["steady_rate_per_s"], " /s"), limit[0],
         _n(limit[1], " /s"), _ratio(p["steady_rate_per_s"], limit[1])),
        ("  consumer: every row made after; rows/s", f"{_s(p['rows_done_s'])}; {_n(p['consumer_rate_per_s'], ' /s')}",
         "Kafka consume, same records, raw", _n(kafka.get("consume_per_s"), " rec/s"),
         _ratio(p["consumer_rate_per_s"], kafka.get("consume_per_s"))),
        ("  first / last sent after", f"{_s(p['first_sent_s'])} / {_s(p['all_sent_s'])}",
         *((f"NOTIFY_BATCH_SIZE / provider latency ({batch} / {latency_ms} ms)",
            _n(1000 * batch / latency_ms, " /s")) if bound else ("", "")), ""),
        ("  provider call in notify (notify_send_seconds), mean", _n(sends.get("mean_ms"), " ms"),
         "  alone, p50 / p99", " / ".join(_n((gw.get("latency") or {}).get(k)) for k in ("p50_ms", "p99_ms")) + " ms"
         if gw else "-", ""),
        ("  time in notify, row made -> sent, p50 / p99",
         " / ".join(_n(p["queue_wait"].get(k)) for k in ("p50_ms", "p99_ms")) + " ms", "", "", ""),
        ("  status events per message", _events(p.get("outbox")), "", "", ""),
        ("  PostgreSQL transactions / WAL fsyncs per message", _pg(p), "pgbench 1-row INSERT, -c 8",
         _n(pg.get(8, {}).get("commits_per_s"), " commits/s"), ""),
    ]
    if p["channel"] == "sms":
        out.append(("  delivery receipts recorded; last after", f"{p['delivered']:,} of {p['messages']:,}; "
                    f"{_s(p['last_delivered_s'])}", "", "", ""))
    out.append(("  not sent (failed or missing); Kafka produce of the batch", f"{p['not_sent']}; {_s(p['produce_s'])}",
                "Kafka produce, same records, raw", _n(kafka.get("produce_per_s"), " rec/s"), ""))
    return out


def emergency_rows(e: dict, c: dict, settings: dict) -> list[tuple]:
    b, d, behind = e["backlog"], e["during"], e["behind"]
    g = c.get("gateway") or {}
    gw = g.get("latency") or {}
    q = d["queued"]
    out = [
        (f"# Emergency under backlog: {b['messages']:,} normal SMS made while the gateway took "
         f"{_n(b.get('hold_ms'))} ms a send, then back to {e.get('latency_ms')} ms and {d['emergencies']} emergencies "
         f"(one SMS each), one every {_n(e['interval_s'])} s", "", "", "", ""),
        ("emergency produce -> SMS at the gateway, p50 / p95 / max", _ms3(d["produce_to_gateway"]),
         f"gateway alone, one send p50 ({g.get('concurrency', '-')} in flight)", _n(gw.get("p50_ms"), " ms"),
         _ratio(d["produce_to_gateway"].get("p50_ms"), gw.get("p50_ms"))),
        ("  produce -> row made (consumer)", _ms3(d["produce_to_row"]), "", "", ""),
        ("  row made -> SMS at the gateway (claims, send)", _ms3(d["row_to_gateway"]), "", "", ""),
        ("  claims per emergency, sorted (a second one: deferred by the rate limit)",
         ", ".join(str(x) for x in d.get("claims") or []) or "-", "", "", ""),
        ("  normal SMS still queued at each one's send: min / p50 / max",
         f"{_n(q['min'])} / {_n(q['p50'])} / {_n(q['max'])}", "", "", ""),
        ("  emergencies at the gateway", f"{d['at_gateway']} of {d['emergencies']}", "", "", ""),
        ("backlog drain at 200 ms: while the emergencies ran / steady",
         f"{_n(b['drain_rate_during_emergencies_per_s'])} / {_n(b.get('steady_rate_before_restart_per_s'), ' /s')}",
         "provider rate limit (configured)", _n(settings.get("notify_provider_rate_per_s"), " /s"),
         _ratio(b.get("steady_rate_before_restart_per_s"), settings.get("notify_provider_rate_per_s"))),
        ("  every row made after; sent meanwhile; queued then; queued at the first emergency",
         f"{_s(b['polled_ingest_s'])}; {_n(b.get('sent_while_held'))}; {_n(b['queued_when_ingested'])}; "
         f"{_n(b.get('queued_when_emergencies_started'))}", "", "", ""),
        ("  status events per message", _events(e.get("outbox")), "", "", ""),
    ]
    if behind["emergencies"]:
        each = lambda a, z: ", ".join(_s(i[z] - i[a]) if i.get(z) else "-" for i in behind["items"])  # noqa: E731
        out += [
            (f"{behind['emergencies']} emergencies right behind the backlog on the topic: produce -> gateway",
             each("produced", "gateway"), "", "", ""),
            ("  of which produce -> row made (behind the backlog in its partition)", each("produced", "created"),
             "", "", ""),
            ("  normal SMS still queued at each one's send", ", ".join(_n(x) for x in behind["queued_at_gateway"]),
             "", "", ""),
        ]
    if (ld := e.get("lifted_drain")) and (ld.get("sent_after_restart") or 0) < 10:
        out.append(("# The rest of the backlog, dispatcher alone: nothing left at the restart", "", "", "", ""))
    elif ld:
        batch, lat = settings.get("notify_batch_size"), e.get("latency_ms") or 200
        out += [
            (f"# The rest of the backlog, dispatcher alone: notify restarted with NOTIFY_PROVIDER_RATE_PER_S="
             f"{ld['env'].get('NOTIFY_PROVIDER_RATE_PER_S')}, consumer idle", "", "", "", ""),
            ("SMS/s, steady (middle 80 % of sends)", _n(ld["steady_rate_per_s"], " /s"),
             f"gateway alone, {g.get('concurrency', batch)} in flight", _n(g.get("rate_per_s"), " /s"),
             _ratio(ld["steady_rate_per_s"], g.get("rate_per_s"))),
            ("  first to last send after the restart", _n(ld["dispatch_rate_per_s"], " /s"),
             f"NOTIFY_BATCH_SIZE / provider latency ({batch} / {lat} ms)",
             _n(1000 * batch / lat if batch else None, " /s"),
             _ratio(ld["steady_rate_per_s"], 1000 * batch / lat if batch else None)),
            ("  left at the restart; sent after it; notify ready (consumer joined) after",
             f"{_n(ld['left_at_restart'])}; {_n(ld['sent_after_restart'])}; {_s(ld['ready_after_restart_s'])}",
             "", "", ""),
            ("  first / last send after the restart", f"{_s(ld['first_sent_after_restart_s'])} / "
             f"{_s(ld['drained_after_restart_s'])}", "", "", ""),
        ]
    return out


def ceiling_rows(c: dict) -> list[tuple]:
    if not c:
        return []
    out = [("# Ceilings alone (notify stopped; same gateway, sink, PostgreSQL and broker)", "", "", "", "")]
    if g := c.get("gateway"):
        out.append((f"SMS gateway, raw httpx, {g['concurrency']} in flight, {g['ok']:,} sends",
                    _n(g["rate_per_s"], " /s"), "p50 / p99", _ms3(g["latency"], ("p50", "p99")), ""))
    if s := c.get("smtp"):
        out.append((f"SMTP sink, raw aiosmtplib, {s['concurrency']} in flight, {s['ok']:,} emails",
                    _n(s["rate_per_s"], " /s"), "p50 / p99", _ms3(s["latency"], ("p50", "p99")), ""))
    if k := c.get("kafka"):
        out.append((f"Kafka {k['records']:,} records, {k['partitions']} partitions: produce / consume",
                    f"{_n(k['produce_per_s'])} / {_n(k['consume_per_s'])} rec/s", "", "", ""))
    out += pgbench_rows(c, 5)
    return out


def rows(r: dict) -> list[tuple]:
    c, st = r.get("ceilings") or {}, r.get("notify_settings") or {}
    lat = (r.get("args") or {}).get("provider_latency_ms") or 200
    gw, smtp = c.get("gateway") or {}, c.get("smtp") or {}
    bucket = ("provider rate limit (configured)", st.get("notify_provider_rate_per_s"))
    batch = st.get("notify_batch_size")
    bound = ("NOTIFY_BATCH_SIZE / provider latency", 1000 * batch / lat if batch else None)
    out: list[tuple] = []
    if p := r.get("sms"):
        out.append((f"# SMS throughput: {p['messages']:,} ReferralCreated, one SMS each -> notify -> gateway "
                    f"({lat} ms per send); batch {batch}, provider rate {_n(bucket[1])}/s burst "
                    f"{st.get('notify_provider_burst')}", "", "", "", ""))
        out += throughput_rows(p, (f"gateway alone, {gw.get('concurrency', batch)} in flight", gw.get("rate_per_s")),
                               bucket, c, st, lat)
    if p := r.get("email"):
        out.append((f"# Email throughput: {p['messages']:,} ReferralCreated, one email each -> notify -> SMTP sink",
                    "", "", "", ""))
        out += throughput_rows(p, (f"SMTP sink alone, {smtp.get('concurrency', batch)} in flight",
                                   smtp.get("rate_per_s")), ("", None), c, st, lat)
    if e := r.get("emergency"):
        out += emergency_rows(e, c, st)
    if p := r.get("lifted"):
        env = p.get("env") or {}
        out.append((f"# SMS throughput, provider rate limit lifted (NOTIFY_PROVIDER_RATE_PER_S="
                    f"{env.get('NOTIFY_PROVIDER_RATE_PER_S')}, notify restarted): {p['messages']:,} SMS", "", "", "", ""))
        out += throughput_rows(p, (f"gateway alone, {gw.get('concurrency', batch)} in flight", gw.get("rate_per_s")),
                               bound, c, st, lat)
    return out + ceiling_rows(c)


def notes(r: dict) -> list[str]:
    out = []
    for key in ("sms", "email", "lifted"):
        p = r.get(key) or {}
        if p.get("not_sent"):
            out.append(f"NOTE: {key}: {p['not_sent']} of {p['messages']} messages not sent: {p['statuses']}")
        if (p.get("outbox") or {}).get("unpublished"):
            out.append(f"NOTE: {key}: {p['outbox']['unpublished']} status events not yet published at the end")
    e = r.get("emergency") or {}
    batch = (r.get("notify_settings") or {}).get("notify_batch_size") or 0
    if e and (e["during"]["queued"]["min"] or 0) < batch:
        out.append(f"NOTE: an emergency went out with {e['during']['queued']['min']} normal messages queued, fewer "
                   f"than one batch ({batch}): the backlog had (nearly) drained; that one was not under backlog")
    for part in ("behind", "during"):
        d = e.get(part) or {}
        if d and d["at_gateway"] < d["emergencies"]:
            out.append(f"NOTE: {part}: only {d['at_gateway']} of {d['emergencies']} emergencies reached the gateway")
    for phase, cpu in (r.get("cpu") or {}).items():
        if (cpu.get("others_busy_pct") or 0) > 10:
            out.append(f"NOTE: {phase}: processes outside the stack used {cpu['others_busy_pct']} % of the cores")
    for name, g in (r.get("ceilings") or {}).items():
        if isinstance(g, dict) and g.get("errors"):
            out.append(f"NOTE: ceiling {name}: errors {g['errors']}")
    return out


def profile_lines(p: dict | None, top: int = 8) -> list[str]:
    if not p:
        return []
    out = [f"py-spy on notify, {p['messages']:,} SMS with the limit lifted: {p['samples']} on-CPU samples, notify at "
           f"{_n(p['notify_cpu_pct_of_one_core'])} % of one core, {_n(p['notify_cpu_ms_per_message'])} ms of CPU per "
           f"message ({_n(p['rate_per_s'])} /s while sampled). Raw stacks: {p['file']}", "",
           "  by what the code does, inclusive"]
    out += [f"  {x['pct']:5.1f} %  {x['what']}" for x in p["focus"]]
    return out + section_lines(p, top) + [""]


def render(r: dict) -> str:
    lines = table_lines(rows(r), HEADER)
    cpu = r.get("cpu") or {}
    lines += [*notes(r), "", *_cpu_lines(cpu, "message"), *_others(cpu), *_idle_lines(r.get("cpu_idle")), "",
              *profile_lines(r.get("profile")), *_machine_lines(r.get("machine") or {})]
    return "\n".join(lines)


def _others(cpu: dict) -> list[str]:
    if not cpu:
        return []
    return ["processes outside the stack (% of all cores): " + ", ".join(
        f"{phase} {_n(c.get('others_busy_pct'), ' %')}" for phase, c in cpu.items())]
