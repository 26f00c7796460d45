"""The pure parts of `python -m bench reporting` (bench/reporting.py, bench/reporting_report.py): the stream it
feeds reporting, the sums over the polls, the SQL it runs beside the views, and the table. No stack."""
import json
import uuid
from collections import Counter, defaultdict

import pytest

from bench import reporting, reporting_report
from bench.profile import GREENLETS, REPO_ROOT
from runtime.cloudevents import decode
from schemas.catalog import CATALOG
from services.reporting.projections import HANDLERS, topics

END = 1_763_000_000.0  # 2025-11-13: the stream's last day, fixed so the tests do not move with the clock
TYPES = {spec.type: name for name, spec in reporting.SPECS.items()}


@pytest.fixture(scope="module")
def stream():
    return reporting.make_stream(4000, seed=3, end=END)


def test_payloads_are_postgresqls_jsonb_text_shortest_key_first():
    value = {"bb": 1, "a": [{"zz": None, "y": "Hà Nội"}], "ab": True, "b": [1, "x"]}
    assert reporting.jsonb_text(value) == '{"a": [{"y": "Hà Nội", "zz": null}], "b": [1, "x"], "ab": true, "bb": 1}'
    assert reporting.iso_z(0) == "1970-01-01T00:00:00Z" and reporting.iso_z(1.9) == "1970-01-01T00:00:01Z"


def test_every_record_is_an_event_as_its_relay_sends_it_and_as_reportings_consumer_reads_it(stream):
    handled = {m for m in HANDLERS}
    for _ts, kind, topic, key, value, headers in stream.records:
        envelope = decode(headers, value)  # what the consumer does first
        model, service = reporting.MODELS[TYPES[envelope.type]]
        assert model in handled and topic == CATALOG.topic(topic).name == reporting.SPECS[kind].topic
        assert envelope.source == f"/hotline111/{service}"
        assert dict(headers)["traceparent"].startswith(b"00-")
        payload = model.model_validate_json(envelope.data)
        assert payload.model_dump(mode="json") == json.loads(value)  # every field, as model_dump writes it
        assert value.decode() == reporting.jsonb_text(json.loads(value))
        case_id = getattr(payload, "case_id", None)
        assert key == str(case_id or payload.contact_id).encode()  # case id, else the contact's own id
        assert envelope.subject == (payload.case_number if kind.startswith(("case.", "referral.")) else None)
    assert {r[2] for r in stream.records} == set(topics())  # every topic reporting reads, no other


def test_the_stream_is_the_first_n_events_in_time_order_and_is_reproducible(stream):
    times = [r[0] for r in stream.records]
    assert len(times) == 4000 and times == sorted(times)
    assert END - 12.1 * 365.25 * 86400 < times[0] < times[-1] <= END
    again = reporting.make_stream(4000, seed=3, end=END)
    assert [r[4] for r in again.records] == [r[4] for r in stream.records]
    assert stream.counts == Counter(r[1] for r in stream.records)
    contacts = [r for r in stream.records if r[1] == "contact"]
    assert 0.35 < len(contacts) / 4000 < 0.6  # the hotline's mix: a case brings about fifty events
    kinds = {json.loads(r[4])[f] for r in contacts for f in ("contact_type",)}
    assert kinds == {"consultation", "non_case", "information_report", "follow_up", "emergency"}
    assert stream.kafka(0, 2) == [(r[2], r[3], r[4], r[5]) for r in stream.records[:2]]
    only = reporting.make_stream(500, seed=4, end=END, contacts_only=True)
    assert len(only.records) == 500 and set(only.counts) == {"contact"}


def test_a_cases_life_is_consistent():
    recs = reporting.Mix(seed=9, case_share=1.0).case(1.6e9)
    by_kind = defaultdict(list)
    for r in sorted(recs, key=lambda r: r[0]):
        by_kind[r[1]].append(json.loads(r[4]))
    case = [*by_kind["case.reported"], *by_kind["case.updated"], *by_kind["case.status"]]
    assert len(by_kind["contact"]) == 1 and len(by_kind["case.reported"]) == 1
    assert by_kind["contact"][0]["case_id"] == by_kind["case.reported"][0]["case_id"]
    ordered = sorted(recs, key=lambda r: r[0])
    versions = [json.loads(r[4])["version"] for r in ordered if r[1].startswith("case.")]
    assert versions == list(range(1, len(case) + 1))  # the case's version after each change, in time order
    statuses = [(s["from_status"], s["to_status"]) for s in by_kind["case.status"]]
    assert statuses[0] == ("open", "referred") and all(a[1] == b[0] for a, b in zip(statuses, statuses[1:]))
    referrals = {r["referral_id"] for r in by_kind["referral.created"]}
    assert 3 <= len(referrals) <= 5
    alerts = Counter((n["referral_id"], n["channel"]) for n in by_kind["notification"])
    assert set(alerts) == {(r, c) for r in referrals for c in ("sms", "email")}
    assert {n: alerts[n] for n in alerts if n[1] == "sms"} == {n: 4 for n in alerts if n[1] == "sms"}
    ranks = {"created": 0, "notified": 1, "acknowledged": 2, "accepted": 3, "declined": 3}
    for referral in referrals:
        steps = [s for s in by_kind["referral.status"] if s["referral_id"] == referral]
        assert [ranks[s["to_status"]] for s in steps] == list(range(1, len(steps) + 1))


def test_the_rebuilds_wake_up_event_is_one_reporting_does_not_project():
    mix = reporting.Mix(seed=1)
    case_id = str(uuid.uuid4())
    _ts, kind, topic, key, value, headers = reporting.nudge_event(mix, case_id, "111-2026-000001", END)
    envelope = decode(headers, value)
    model, _ = reporting.MODELS[TYPES[envelope.type]]
    assert kind == "case.note" and model not in HANDLERS and topic in topics() and key == case_id.encode()


def test_progress_is_read_from_the_polls():
    polls = [(float(t), min(1000, 100 * t)) for t in range(12)]  # 100 events a second, all in at t = 10
    s = reporting.progress_summary(polls, 1000, produce_s=2.5)
    assert s["all_applied_s"] == 10.0 and s["first_applied_s"] == 1.0 and s["rate_per_s"] == 100.0
    assert s["steady_rate_per_s"] == 100.0  # from the poll at 100 to the one at 900
    assert s["applied_when_produce_ended"] == 200 and s["rate_after_produce_per_s"] == 100.0  # from t = 3
    assert s["p99_applied_s"] == 10.0 and s["tail_s"] == 0.0 and s["longest_stall_s"] == 0.0
    stalled = [(0.0, 0), (1.0, 500), (2.0, 980), (3.0, 980), (4.0, 980), (5.0, 995), (6.0, 1000)]
    s = reporting.progress_summary(stalled, 1000)
    assert s["longest_stall_s"] == 2.0 and s["p99_applied_s"] == 5.0 and s["tail_s"] == 1.0
    assert s["rate_to_p99_per_s"] == 199.0
    assert reporting.progress_summary([(1.0, 5)], 10)["all_applied_s"] is None
    assert reporting.thin([(0.0, 0), (1.0, 1), (5.5, 2), (6.0, 3)], 5) == [[0.0, 0], [5.5, 2], [6.0, 3]]


def test_sql_of_the_views_runs_through_asyncpg_with_the_same_values():
    sql, args = reporting.asyncpg_sql("SELECT x::date FROM t WHERE d BETWEEN :start AND :end AND p = :province "
                                      "AND q = :start", {"start": 1, "end": 2, "province": "01"})
    assert sql == "SELECT x::date FROM t WHERE d BETWEEN $1 AND $2 AND p = $3 AND q = $1" and args == [1, 2, "01"]
    summary, contacts = reporting.stats_queries()
    statements = reporting.summary_statements(summary)
    assert [q.measure.name for q in statements][:2] == ["contacts", "cases"] and len(statements) == 8
    assert contacts.measure.name == "contacts" and contacts.by == ("province",) and contacts.group.value == "month"


def test_rows_are_compared_without_the_inbox_and_cpu_shares():
    assert reporting.row_checks_equal({"cases": 1, "inbox": 5}, {"cases": 1, "inbox": 6})
    assert not reporting.row_checks_equal({"cases": 1}, {"cases": 2})
    assert reporting.core_share({"wall_s": 10.0, "per_process": {"reporting": {"cpu_s": 9.5}}}, "reporting") == 95.0
    assert reporting.core_share({"wall_s": 10.0, "per_process": {}}, "reporting") is None


def test_quick_and_default_sizes():
    quick, default = reporting.parse_args(["--quick"]), reporting.parse_args([])
    assert (quick.events, default.events, default.query_contacts, default.queries) == (50_000, 1_000_000,
                                                                                      1_000_000, 300)
    assert reporting.parse_args(["--no-profile"]).profile_events == 0
    with pytest.raises(SystemExit):
        reporting.parse_args(["--events", "100", "--warmup", "100"])
    with pytest.raises(SystemExit):
        reporting.parse_args(["--reporting-env", "DB_POOL_SIZE"])


def test_focus_sums_what_reportings_code_does(tmp_path):
    raw = tmp_path / "raw.txt"
    root = "_run_module_as_main (<frozen runpy>)"
    site = "/x/.venv/lib/python3.11/site-packages"
    batch = f"_process_batch ({REPO_ROOT}/runtime/consumer.py)"
    raw.write_text(
        f"{root};{batch};on_contact_recorded ({REPO_ROOT}/services/reporting/projections/contacts.py) 2\n"
        f"{root};{batch};commit ({REPO_ROOT}/runtime/uow.py);flush ({REPO_ROOT}/services/reporting/projections/"
        f"batch.py);visit_bindparam ({site}/sqlalchemy/sql/compiler.py) 4\n"
        f"{root};{batch};_decode ({REPO_ROOT}/runtime/consumer.py) 1\n"
        f"{root};{batch};Tracer.start_span (trace/__init__.py) 1\n"  # py-spy's name for opentelemetry's file
        f"_do ({site}/asyncpg/connection.py) 2\n")
    got = {x["what"]: x["pct"] for x in reporting.focus(raw, reporting.PROJECTION_FOCUS)}
    assert got[reporting.PROJECTION_FOCUS[0][0]] == 80.0
    assert got["  handlers: events folded into rows (projections/)"] == 20.0
    assert got["  rows written at commit, multi-row statements (projections/batch.py)"] == 40.0
    assert got["  commit (UnitOfWork.commit)"] == 40.0
    assert got["  compiling statements (sqlalchemy/sql/, any frame)"] == 40.0
    assert got["SQLAlchemy (any frame)"] == 40.0 and got[GREENLETS] == 20.0
    assert got["  tracing: a span per event (opentelemetry)"] == 10.0


def results() -> dict:
    polls = [(float(t), min(1000, 100 * t)) for t in range(12)]
    projection = reporting.progress_summary(polls, 1000, 2.5) | {
        "produce_s": 2.5, "produce_per_s": 400.0, "kinds": {"contact": 460, "notification": 540},
        "pg": {"events_per_transaction": 80.0, "rows_inserted_per_event": 1.7, "rows_updated_per_event": 0.5,
               "wal_fsyncs_per_1000_events": 12.0}, "reporting_cpu_pct_of_one_core": 97.0}
    rebuild = reporting.progress_summary([(0.0, 0), (5.0, 0), (6.0, 100), (15.0, 1001)], 1001) | {
        "request_s": 0.4, "nudge_after_s": 60.0, "nudged_at_s": 5.0, "wait_caught_up_s": 15.2,
        "join_s": 6.0, "replay_s": 9.0, "replay_rate_per_s": 111.2, "pg": {}, "reporting_cpu_pct_of_one_core": 99.0}
    lat = lambda p50, p99: {"n": 300, "p50_ms": p50, "p90_ms": p99, "p99_ms": p99, "max_ms": p99}  # noqa: E731
    queries = {"concurrency": 1, "requests": 300, "warmup": 20,
               "floor": {"latency": lat(2.0, 4.0), "errors": {}},
               "summary": {"latency": lat(30.0, 40.0), "rate_per_s": 30.0, "bytes": 1400, "errors": {}},
               "contacts_month_province": {"latency": lat(300.0, 400.0), "rate_per_s": 3.0, "bytes": 4e5,
                                           "errors": {"HTTP 500": 1}},
               "in_process": {"summary": lat(25.0, 35.0), "contacts_month_province": lat(280.0, 350.0),
                              "suppression": lat(250.0, 300.0),
                              "table": {"periods": 179, "categories": 35, "suppressed": 2800}},
               "sql": {"summary": lat(20.0, 30.0) | {"statements": 10},
                       "contacts_month_province": lat(30.0, 50.0) | {"statements": 3},
                       "contacts_plan": {"execution_ms": 25.0}}}
    return {"projection": projection, "rebuild": rebuild, "queries": queries,
            "checks": {"projection": {"cases": 1}, "rebuild": {"cases": 2}, "rebuild_equals_projection": False,
                       "queries": {"contacts": 1_000_000, "cases": 10_000}},
            "ceilings": {"consume_topics": {"records": 1001, "partitions": 24, "consume_per_s": 80_000.0},
                         "pgbench": [{"clients": 1, "seconds": 8, "commits_per_s": 5000.0, "latency_avg_ms": 0.2}],
                         "pgbench_batch": {"rows_per_transaction": 200, "seconds": 8, "rows_per_s": 30_000,
                                           "commits_per_s": 150.0}}}


def test_the_table_puts_each_figure_beside_its_ceiling_and_ratio():
    text = reporting_report.render(results())
    lines = text.splitlines()
    first = next(ln for ln in lines if ln.startswith("events/s, first produce to every position"))
    assert "100 /s" in first and "80,000 rec/s" in first and first.rstrip().endswith("0 %")
    assert any(ln.startswith("rebuild time, request to every position") and "15.0 s" in ln and "150 %" in ln
               for ln in lines)
    assert any("nothing after 5.0 s: woken by an event" in ln for ln in lines)
    summary = next(ln for ln in lines if ln.startswith("GET /v1/stats/summary"))
    assert "30.0 / 40.0 ms" in summary and "25.0 / 35.0 ms" in summary and "114 %" in summary
    assert any("97 % of one core" in ln for ln in lines)
    assert "NOTE: the rebuilt rows differ" in text and "NOTE: contacts_month_province: errors" in text
    assert "replayed nothing for 5.0 s" in text
    assert reporting_report.rows({}) == []
