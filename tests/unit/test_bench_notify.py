"""The pure parts of `python -m bench notify` (bench/notify.py, bench/notify_report.py): the events it feeds
notify, the sums over the rows, the metrics parser and the table. No stack."""
import pytest

from bench import notify, notify_report
from bench.profile import GREENLETS, REPO_ROOT
from runtime.cloudevents import decode
from schemas import event_spec_for_model
from schemas.events.common import Urgency
from schemas.events.referrals import ReferralCreated
from services.notify.notifications.handlers import PRIORITY
from services.notify.recipients import normalise
from services.notify.templates.kinds import Kind, kind_of


def test_numbers_and_addresses_are_distinct_and_pass_notifys_checks_on_a_dev_stack():
    assert notify.sms_number(0) == "+840000000000" and notify.sms_number(99_999) == "+840000099999"
    assert normalise("sms", notify.sms_number(12_345), allow_fictitious=True) == "+840000012345"
    assert normalise("email", notify.email_address(7)) == "bench-000007@agencies.hotline111.example"
    assert len({notify.sms_number(i) for i in range(1000)}) == 1000
    with pytest.raises(ValueError):
        notify.sms_number(100_000)


def test_records_are_referral_created_events_as_referrals_relay_sends_them():
    spec = event_spec_for_model(ReferralCreated)
    payloads = [notify.referral_created(i, urgency=Urgency.emergency if i % 2 else Urgency.normal,
                                        sms=notify.sms_number(i) if i % 3 else None,
                                        email=None if i % 3 else notify.email_address(i)) for i in range(6)]
    recs = [notify.record(p) for p in payloads]
    for p, (key, value, headers, event_id) in zip(payloads, recs, strict=True):
        envelope = decode(headers, value)  # what notify's consumer does first
        assert envelope.type == spec.type and envelope.source == "/hotline111/referral"
        assert str(envelope.id) == event_id and key == str(p.case_id).encode()
        got = ReferralCreated.model_validate_json(envelope.data)
        assert got == p and kind_of(got) is Kind.created and len(got.contacts) == 1
    assert spec.topic == notify.TOPIC
    assert {len({r[3] for r in recs}), len({p.case_id for p in payloads})} == {6}
    assert PRIORITY[payloads[1].urgency] == 0 and PRIORITY[payloads[0].urgency] == 2  # emergencies claimed first


def test_rates_windows_and_what_is_still_queued():
    times = [float(i) for i in range(101)]  # one item a second
    assert notify.steady_rate(times) == 1.0 and notify.steady_rate(times[:5]) is None
    assert notify.window_rate(times, 10, 20) == 1.1  # 11 items with a time in [10, 20]
    assert notify.window_rate(times, 5, 5) is None
    created, sent = [0.0, 1.0, 2.0, 3.0], [1.5, 2.5]
    assert [notify.still_queued(created, sent, t) for t in (-1, 0, 1.5, 2.0, 9)] == [0, 1, 1, 2, 2]
    assert notify.summary_p95([0.1, 0.2, 0.3, 0.4]) == {"n": 4, "p50_ms": 200.0, "p95_ms": 400.0, "max_ms": 400.0}


def rows(n: int, t0: float = 1000.0, sent_every: float = 0.02) -> list[dict]:
    return [{"status": "delivered" if i % 2 else "sent", "created": t0 + 0.01 * i, "sent": t0 + 1 + sent_every * i,
             "delivered": t0 + 1.1 + sent_every * i if i % 2 else None} for i in range(n)]


def test_a_phase_is_split_at_the_rows_into_consumer_and_dispatcher():
    r = rows(100) + [{"status": "permanent-failure", "created": 1001.0, "sent": None, "delivered": None}]
    s = notify.phase_summary(r, 1000.0, 101)
    assert s["rows"] == 101 and s["sent"] == 100 and s["not_sent"] == 1
    assert s["statuses"] == {"delivered": 50, "permanent-failure": 1, "sent": 50}
    assert s["rows_done_s"] == 1.0 and s["consumer_rate_per_s"] == 101.0
    assert s["first_sent_s"] == 1.0 and s["all_sent_s"] == 2.98 and s["rate_per_s"] == 33.6
    assert s["steady_rate_per_s"] == 50.0 and s["delivered"] == 50
    assert s["queue_wait"]["n"] == 100 and s["queue_wait"]["p50_ms"] == pytest.approx(1490.0)


def test_emergencies_are_timed_to_the_gateway_and_see_the_queue_at_that_moment():
    backlog_created, backlog_sent = [0.0] * 1000, [10.0 + i * 0.02 for i in range(1000)]  # 50/s from t = 10
    items = [{"produced": 20.0, "created": 20.01, "sent": 20.31, "gateway": 20.31, "claims": 1},
             {"produced": 22.0, "created": 22.02, "sent": 24.01, "gateway": 24.01, "claims": 9},
             {"produced": 24.0, "created": None, "sent": None, "gateway": None, "claims": None}]
    e = notify.emergency_summary(items, backlog_created, backlog_sent)
    assert e["emergencies"] == 3 and e["at_gateway"] == 2 and e["claims"] == [1, 9]
    assert e["produce_to_gateway"] == {"n": 2, "p50_ms": 310.0, "p95_ms": 2010.0, "max_ms": 2010.0}
    assert e["row_to_gateway"]["max_ms"] == pytest.approx(1990.0)
    assert e["queued_at_gateway"] == [1000 - 516, 1000 - 701] and e["queued"]["max"] == 484


def test_status_events_per_message_count_the_claims_again():
    o = notify.outbox_summary([{"status": "created", "n": 100, "unpub": 0}, {"status": "sending", "n": 250, "unpub": 2},
                               {"status": "sent", "n": 100, "unpub": 0}], 100)
    assert o["per_message"] == {"created": 1.0, "sending": 2.5, "sent": 1.0}
    assert o["claims_again_per_message"] == 1.5 and o["unpublished"] == 2


METRICS = """# HELP notify_send_seconds Provider call time
# TYPE notify_send_seconds histogram
notify_send_seconds_bucket{channel="sms",le="0.25",provider="local-generic"} 90.0
notify_send_seconds_count{channel="sms",provider="local-generic"} 100.0
notify_send_seconds_sum{channel="sms",provider="local-generic"} 21.5
notify_send_seconds_count{channel="email",provider="smtp"} 7.0
notify_send_attempts_total{channel="sms",provider="local-generic",verdict="accepted"} 99.0
notify_send_attempts_total{channel="sms",provider="local-generic",verdict="retry"} 1.0
weird line without a value
label_with_quote{x="a \\"b\\" c"} 3
"""


def test_prometheus_text_is_parsed_and_a_phase_reads_as_the_difference():
    after = notify.parse_prometheus(METRICS)
    assert after[("notify_send_seconds_sum", (("channel", "sms"), ("provider", "local-generic")))] == 21.5
    assert after[("label_with_quote", (("x", 'a \\"b\\" c'),))] == 3.0
    assert notify.metric(after, "notify_send_seconds_count") == 107.0
    assert notify.metric(after, "notify_send_seconds_count", channel="email") == 7.0
    before = notify.parse_prometheus("notify_send_seconds_count{channel=\"sms\"} 50\n"
                                     "notify_send_seconds_sum{channel=\"sms\"} 10.5\n")
    s = notify.send_stats(before, after, "sms")
    assert s == {"calls": 50, "mean_ms": 220.0, "verdicts": {"accepted": 99, "retry": 1}}
    assert notify.send_stats(after, after, "sms")["mean_ms"] is None


def test_the_steady_window_is_bracketed_by_polls_inside_the_middle_of_the_sends():
    sent = [float(i) for i in range(100)]
    polls = [i * 2.5 for i in range(41)]  # 0, 2.5, ... 100
    i, j, items = notify.steady_window(polls, sent)
    assert (polls[i], polls[j], items) == (10.0, 87.5, 77)  # the sends after the first poll, up to the last
    assert notify.steady_window([0.0, 100.0], sent) is None and notify.steady_window(polls, sent[:5]) is None


def test_quick_and_default_sizes_and_too_many_numbers():
    quick, default = notify.parse_args(["--quick"]), notify.parse_args([])
    assert (quick.messages, default.messages, default.backlog, default.emergencies) == (500, 3000, 10_000, 20)
    assert default.provider_latency_ms == 200 and default.interval == 2.0
    assert notify.parse_args(["--no-profile"]).profile_messages == 0
    assert notify.parse_args(["--lifted-rate", "0"]).profile_messages == 0
    with pytest.raises(SystemExit):
        notify.parse_args(["--backlog", "99000"])  # over the 100,000 fictitious numbers
    with pytest.raises(SystemExit):
        notify.parse_args(["--notify-env", "NOTIFY_BATCH_SIZE"])


def test_focus_sums_what_notifys_code_does(tmp_path):
    raw = tmp_path / "raw.txt"
    root = "_run_module_as_main (<frozen runpy>)"
    site = "/x/.venv/lib/python3.11/site-packages"
    raw.write_text(
        f"{root};claim ({REPO_ROOT}/services/notify/notifications/dispatcher.py);"
        f"execute ({site}/sqlalchemy/engine/base.py) 3\n"
        f"{root};deliver ({REPO_ROOT}/services/notify/notifications/dispatcher.py);"
        f"send ({REPO_ROOT}/services/notify/delivery/sms/generic.py);post ({site}/httpx/_client.py) 5\n"
        f"_execute ({site}/sqlalchemy/engine/base.py);_do ({site}/asyncpg/connection.py) 2\n")
    got = {x["what"]: x["pct"] for x in notify.focus(raw, notify.FOCUS)}
    assert got["dispatcher: the claim (Dispatcher.claim)"] == 30.0
    assert got["  the provider call (GenericSmsProvider.send)"] == 50.0
    assert got["HTTP client: httpx, httpcore (any frame)"] == 50.0
    assert got["SQLAlchemy (any frame)"] == 50.0 and got[GREENLETS] == 20.0


def results() -> dict:
    sms = notify.phase_summary(rows(100), 1000.0, 100) | {
        "channel": "sms", "produce_s": 0.01, "sends": {"calls": 100, "mean_ms": 230.0, "verdicts": {"accepted": 100}},
        "pg_transactions_per_message": 10.1, "pg_wal_fsyncs_per_message": 5.5,
        "outbox": notify.outbox_summary([{"status": "sending", "n": 210, "unpub": 0}], 100)}
    emergency = {
        "backlog": notify.phase_summary(rows(100), 1000.0, 100) | {
            "polled_ingest_s": 12.0, "queued_when_ingested": 900, "drain_rate_during_emergencies_per_s": 48.0,
            "steady_rate_before_restart_per_s": 50.1},
        "behind": notify.emergency_summary([{"produced": 0.0, "created": 11.0, "sent": 11.5, "gateway": 11.5,
                                             "claims": 1}], [0.0] * 10, [5.0] * 5) | {
            "items": [{"produced": 0.0, "created": 11.0, "gateway": 11.5}]},
        "during": notify.emergency_summary([{"produced": 20.0, "created": 20.01, "sent": 20.3, "gateway": 20.3,
                                             "claims": 3}], [0.0] * 10, [5.0] * 5),
        "interval_s": 2.0, "latency_ms": 200,
        "lifted_drain": {"env": {"NOTIFY_PROVIDER_RATE_PER_S": "100000.0"}, "left_at_restart": 4000,
                         "sent_after_restart": 4000, "ready_after_restart_s": 19.0, "first_sent_after_restart_s": 1.0,
                         "drained_after_restart_s": 40.0, "dispatch_rate_per_s": 100.0, "steady_rate_per_s": 110.0},
    }
    return {"sms": sms, "emergency": emergency, "args": {"provider_latency_ms": 200},
            "notify_settings": {"notify_batch_size": 50, "notify_provider_rate_per_s": 50.0,
                                "notify_provider_burst": 100},
            "ceilings": {"gateway": {"concurrency": 50, "ok": 1000, "rate_per_s": 212.0, "errors": {},
                                     "latency": {"n": 1000, "p50_ms": 223.0, "p99_ms": 345.0}},
                         "pgbench": [{"clients": 8, "seconds": 8, "commits_per_s": 19000.0, "latency_avg_ms": 0.4}]}}


def test_the_table_puts_each_figure_beside_its_ceiling_and_ratio():
    text = notify_report.render(results())
    lines = text.splitlines()
    rate = next(ln for ln in lines if ln.startswith("SMS/s, first produce to last sent"))
    assert "33.6 /s" in rate and "gateway alone, 50 in flight" in rate and "212 /s" in rate and "16 %" in rate
    assert any("claims per emergency" in ln and ln.rstrip().endswith("3") for ln in lines)
    assert any(ln.startswith("SMS/s, steady (middle 80 % of sends)") and "52 %" in ln for ln in lines)
    assert any(ln.startswith("  status events per message") and "sending 2.1" in ln for ln in lines)
    assert any("emergencies right behind the backlog" in ln and "11.5 s" in ln for ln in lines)
    assert notify_report.rows({}) == []
    r = results()
    r["emergency"]["lifted_drain"] |= {"sent_after_restart": 0, "steady_rate_per_s": None}
    assert "dispatcher alone: nothing left at the restart" in notify_report.render(r)
