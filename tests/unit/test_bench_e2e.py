"""The pure parts of `python -m bench` (bench/load.py, bench/verdict.py, bench/chart.py, bench/e2e.py,
bench/report.py): the open-loop schedule, the sustainable-rate rule and its search, the ratios to the
ceilings, the targets, matching agency messages to reports, the chart and the printed report. No stack,
and no assertion on how fast anything is: the clock is a fake one."""
import asyncio

import pytest

from bench import chart, e2e, load, report, verdict
from bench.verdict import Bounds

BOUNDS = Bounds(intake_p99_ms=50.0, message_p99_ms=250.0, min_achieved=0.95)


def lat(p50, p99, n=100):
    return {"n": n, "p50_ms": p50, "p90_ms": p99, "p99_ms": p99, "max_ms": p99}


def stage(rate, *, http_p99=20.0, msg_p99=100.0, intake=None, reached=None, missing=0, errors=None,
          duration=30.0, **extra):
    """A stage as bench/e2e.py `stage` returns it, holding by default."""
    return {"rate_per_s": rate, "duration_s": duration, "scheduled": int(rate * duration),
            "accepted": int(rate * duration) - missing, "errors": errors or {},
            "intake_achieved_per_s": rate if intake is None else intake,
            "delivered_achieved_per_s": rate if reached is None else reached,
            "http_latency": lat(http_p99 / 2, http_p99), "first_message_latency": lat(msg_p99 / 2, msg_p99),
            "missing": missing, **extra}


# -- the open-loop schedule ------------------------------------------------------------------------
def test_the_schedule_is_an_even_grid_fixed_before_the_first_send():
    offsets = load.schedule(50, 30)
    assert len(offsets) == 1500
    assert offsets[0] == 0.0 and offsets[1] == pytest.approx(0.02) and offsets[-1] == pytest.approx(1499 / 50)
    assert all(b - a == pytest.approx(0.02) for a, b in zip(offsets, offsets[1:]))
    assert len(load.schedule(0.1, 30)) == 3  # 0.1 * 30 is 2.9999999999999996 in floating point
    assert len(load.schedule(500, 0.5)) == 250
    assert load.schedule(0, 30) == [] and load.schedule(50, 0) == []


class FakeClock:
    """A clock that only moves when the code under test sleeps, or when a test stalls it."""

    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        self.now += seconds


def run_drive(offsets, start, clock, stall_at=None, stall_s=0.0):
    launched = []

    def launch(i, due):
        launched.append((i, due, clock.now))
        if i == stall_at:  # the client itself stalls (GC, a busy core) right after this launch
            clock.now += stall_s

    lag = asyncio.run(load.drive(offsets, launch, start=start, clock=clock, sleep=clock.sleep))
    return launched, lag


def test_each_request_is_launched_at_its_scheduled_instant():
    clock = FakeClock()
    offsets = load.schedule(10, 1)
    launched, lag = run_drive(offsets, 100.5, clock)
    assert [i for i, _, _ in launched] == list(range(10))
    assert [due for _, due, _ in launched] == [100.5 + o for o in offsets]
    assert all(at == pytest.approx(due) for _, due, at in launched)
    assert lag == pytest.approx(0.0, abs=1e-9)


def test_a_stalled_client_does_not_push_the_schedule_back():
    """No coordinated omission: the requests that fell due during a stall are launched at once with their
    own due times (latency counts from those), and the ones after it keep their places on the grid."""
    clock = FakeClock()
    offsets = load.schedule(10, 1)  # every 0.1 s
    launched, lag = run_drive(offsets, 100.0, clock, stall_at=2, stall_s=0.45)
    dues = [due for _, due, _ in launched]
    assert dues == [100.0 + o for o in offsets]  # nothing skipped, nothing shifted
    at = {i: t for i, _, t in launched}
    assert at[3] == pytest.approx(100.65) and at[4] == pytest.approx(100.65) and at[6] == pytest.approx(100.65)
    assert at[7] == pytest.approx(100.7) and at[9] == pytest.approx(100.9)  # back on the grid after the stall
    assert lag == pytest.approx(0.35)  # request 3, due at 100.3, launched at 100.65


def test_a_slow_server_does_not_slow_the_launches():
    """The launcher never waits for an answer: it only starts tasks. Here answers never come at all."""
    async def scenario():
        clock = FakeClock()
        never = asyncio.Event()
        tasks = []
        await load.drive(load.schedule(100, 0.1), lambda i, due: tasks.append(asyncio.ensure_future(never.wait())),
                         start=clock.now, clock=clock, sleep=clock.sleep)
        launched = len(tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return launched

    assert asyncio.run(scenario()) == 10


def test_open_loop_times_each_request_from_its_own_slot_on_the_grid(monkeypatch):
    """open_loop hands every request its scheduled instant (t0) and wall time, whatever the answers do."""
    seen = []

    async def fake_post(clients, url, i, body, t0, wall, headers=None):
        seen.append((i, t0, wall))
        return load.Sample(i, 201, 0.001, wall, {"case_number": f"111-2026-{i:06d}"})

    monkeypatch.setattr(load, "_post", fake_post)
    run = asyncio.run(load.open_loop(None, "http://x", lambda i: {}, 1000.0, 0.02, max_in_flight=4))
    assert len(run.samples) == 20 and len(run.ok) == 20
    t0s = dict((i, t0) for i, t0, _ in seen)
    walls = dict((i, w) for i, _, w in seen)
    assert [t0s[i] - t0s[0] for i in range(20)] == pytest.approx([i / 1000 for i in range(20)])
    assert [walls[i] - walls[0] for i in range(20)] == pytest.approx([i / 1000 for i in range(20)], abs=1e-6)


def test_open_loop_gives_up_on_answers_after_the_answer_timeout(monkeypatch):
    async def never(clients, url, i, body, t0, wall, headers=None):
        await asyncio.Event().wait()

    monkeypatch.setattr(load, "_post", never)
    run = asyncio.run(load.open_loop(None, "http://x", lambda i: {}, 1000.0, 0.01, answer_timeout=0.01))
    assert [s.index for s in run.samples] == list(range(10))
    assert run.ok == [] and run.errors() == {load.UNANSWERED: 10}


# -- the sustainable-rate rule -----------------------------------------------------------------------
def test_the_achieved_rate_counts_intervals_between_the_first_and_the_last_event():
    assert verdict.achieved_rate([10.0 + i / 50 + 0.3 for i in range(1500)]) == 50.0  # any constant latency
    assert verdict.achieved_rate([0.0, 1.0, 2.0, 30.0]) == 0.1
    assert verdict.achieved_rate([5.0]) is None and verdict.achieved_rate([]) is None
    assert verdict.achieved_rate([3.0, 3.0]) is None


def test_a_stage_holds_only_when_every_condition_does():
    assert verdict.misses(stage(100), BOUNDS) == [] and verdict.holds(stage(100), BOUNDS)
    assert verdict.misses(stage(100, http_p99=50.0, msg_p99=250.0, intake=95, reached=95), BOUNDS) == []
    assert verdict.misses(stage(100, msg_p99=251), BOUNDS) == ["report->first message p99 251 ms > 250 ms"]
    assert verdict.misses(stage(100, http_p99=60), BOUNDS) == ["POST /cases p99 60 ms > 50 ms"]
    assert verdict.misses(stage(100, reached=94.9), BOUNDS) == ["agencies reached 94.9/s < 95 % of 100/s"]
    assert verdict.misses(stage(100, intake=80), BOUNDS) == ["intake answered 80/s < 95 % of 100/s"]
    assert verdict.misses(stage(100, missing=3), BOUNDS) == ["3 reports without an agency message"]
    assert verdict.misses(stage(100, errors={"ReadTimeout": 2, "HTTP 503": 1}), BOUNDS) == ["3 request errors"]
    no_samples = stage(100) | {"first_message_latency": {"n": 0, "p99_ms": None}, "delivered_achieved_per_s": None}
    assert verdict.misses(no_samples, BOUNDS) == ["agencies reached -/s < 95 % of 100/s",
                                                  "report->first message: no samples"]


def test_the_maximum_sustainable_rate_is_the_highest_stage_with_every_slower_one_holding():
    stages = [stage(200, msg_p99=900), stage(50), stage(100), stage(500, reached=150)]
    found = verdict.max_sustainable(stages, BOUNDS)
    assert found["rate_per_s"] == 100 and found["first_miss_per_s"] == 200 and found["held_above_a_miss"] == []
    assert found["bounds"] == {"intake_p99_ms": 50.0, "message_p99_ms": 250.0, "min_achieved": 0.95}
    noisy = verdict.max_sustainable([stage(50), stage(100, msg_p99=300), stage(200)], BOUNDS)
    assert noisy["rate_per_s"] == 50 and noisy["held_above_a_miss"] == [200]
    none = verdict.max_sustainable([stage(50, msg_p99=300), stage(100, msg_p99=900)], BOUNDS)
    assert none["rate_per_s"] is None and none["first_miss_per_s"] == 50
    every = verdict.max_sustainable([stage(50), stage(100)], BOUNDS)
    assert every["rate_per_s"] == 100 and every["first_miss_per_s"] is None


def test_the_search_halves_the_gap_between_the_last_hold_and_the_first_miss():
    stages = [stage(50), stage(100), stage(200, msg_p99=900), stage(500, msg_p99=9000)]
    assert verdict.next_search_rate(stages, BOUNDS) == 150
    stages.append(stage(150, msg_p99=400))
    assert verdict.next_search_rate(stages, BOUNDS) == 125
    stages.append(stage(125))
    assert verdict.next_search_rate(stages, BOUNDS) == 138  # 137.5, to the nearest report/s
    stages.append(stage(138))
    assert verdict.next_search_rate(stages, BOUNDS) is None  # 138..150 is within 10 % of 150
    assert verdict.next_search_rate([stage(50), stage(100)], BOUNDS) is None  # nothing missed: nothing to find
    assert verdict.next_search_rate([stage(50, msg_p99=900)], BOUNDS) == 25  # below the slowest stage
    assert verdict.next_search_rate([stage(5, msg_p99=900)], BOUNDS) == 2.5
    assert verdict.next_search_rate([stage(1.5, msg_p99=900)], BOUNDS) is None  # under 2/s apart


# -- ratios and targets ------------------------------------------------------------------------------
CEILINGS = {
    "pgbench": [{"clients": 1, "seconds": 8, "commits_per_s": 4000.0, "latency_avg_ms": 0.25},
                {"clients": 8, "seconds": 8, "commits_per_s": 16000.0, "latency_avg_ms": 0.5}],
    "minimal_api": {"concurrency": 32, "rate_per_s": 900.0, "http_latency": lat(30, 80),
                    "noop_rate_per_s": 1200.0, "noop_http_latency": lat(20, 40)},
    "kafka": {"messages": 20000, "message_bytes": 300, "produce_per_s": 80000.0, "consume_per_s": 300000.0,
              "latency_rate_per_s": 200.0, "produce_consume_latency": lat(6.0, 20.0),
              "produce_ack_latency": lat(2.0, 5.0)},
}


def results(stages, intake_rate=300.0):
    r = {"stages": stages, "ceilings": CEILINGS, "throughput": {"intake_rate_per_s": intake_rate}}
    r["sustainable"] = verdict.max_sustainable(stages, BOUNDS)
    return r


def test_ratios_divide_our_figures_by_the_ceilings_of_the_same_run():
    r = results([stage(50, pg_transactions_per_report=20.0, events_per_report=12.0),
                 stage(100, pg_transactions_per_report=20.0, events_per_report=10.0), stage(200, msg_p99=800)])
    r["stages"][0]["first_message_latency"] = lat(42.0, 90.0)
    r["stages"][0]["http_latency"] = lat(5.0, 20.0)
    by = {(x["figure"], x["ceiling"]): x for x in verdict.ratios(r)}
    intake = by["intake accepted, closed loop (whole platform running)",
                "minimal FastAPI+asyncpg INSERT, same client and concurrency"]
    assert (intake["measured"], intake["ceiling_value"], intake["ratio"]) == (300.0, 900.0, 0.333)
    best = by["maximum sustainable rate, report to agency", "pgbench 1-row INSERT, 1 client"]
    assert (best["measured"], best["ratio"]) == (100, 0.025)
    assert by["maximum sustainable rate, report to agency", "minimal FastAPI+asyncpg INSERT endpoint"]["ratio"] == 0.111
    pg = by["PostgreSQL transactions/s at the maximum sustainable rate", "pgbench 1-row INSERT, 8 clients"]
    assert (pg["measured"], pg["ratio"]) == (2000.0, 0.125)
    kafka = by["Kafka events/s at the maximum sustainable rate", "raw aiokafka produce (acks=all)"]
    assert (kafka["measured"], kafka["ratio"]) == (1000.0, 0.0125)
    hop = by["report->first message p50 at 50/s", "raw Kafka produce->consume p50 at 200.0/s"]
    assert (hop["measured"], hop["ceiling_value"], hop["ratio"]) == (42.0, 6.0, 7.0)
    post = by["POST /cases p50 at 50/s", "pgbench 1-row INSERT, 1 client, average latency"]
    assert post["ratio"] == 20.0


def test_a_ratio_without_its_ceiling_or_its_figure_is_left_empty():
    r = results([stage(50, msg_p99=900)]) | {"ceilings": {}}
    assert all(x["ratio"] is None for x in verdict.ratios(r))
    assert not any(x["figure"].startswith("Kafka events") for x in verdict.ratios(r))  # nothing sustained


def test_targets_are_met_or_missed_from_the_run_and_unmeasured_otherwise():
    held = {t["target"]: t for t in verdict.targets(results([stage(50), stage(100, msg_p99=240)], 300.0), BOUNDS)}
    msg, thousand, third = held.values()
    assert msg["met"] is True and "p99 240 ms at 100/s" in msg["measured"]
    assert thousand["met"] is False and third["met"] is False  # 300 / 900 = 0.333... < 1/3
    slow = verdict.targets(results([stage(100, msg_p99=260)], 1000.0), BOUNDS)
    assert [t["met"] for t in slow] == [False, True, True]
    behind = verdict.targets(results([stage(100, reached=80)]), BOUNDS)[0]
    assert behind["met"] is False and "agencies reached 80/s" in behind["measured"]
    above = verdict.targets(results([stage(50), stage(200, msg_p99=100)]), BOUNDS)[0]
    assert above["met"] is True and "at 200/s" in above["measured"]  # holding 200/s holds 100/s
    none = verdict.targets({"stages": [stage(50)]}, BOUNDS)
    assert [t["met"] for t in none] == [None, None, None]


# -- agency messages matched to reports --------------------------------------------------------------
def test_the_first_agency_message_of_a_report_is_the_earliest_on_any_channel():
    w = e2e.MessageWatcher(http=None, urls={"email": "-", "sms": "-"})
    w.record("email", {"id": "m1", "received_ts": 10.5, "rcpt_tos": ["police@x"],
                       "subject": "[111] Vụ việc 111-2026-000007 (thường)"})
    w.record("sms", {"id": "s1", "received_ts": 10.2, "to": "+840000090401",
                     "body": "Đường dây nóng 111 chuyển vụ việc 111-2026-000007 (thường) tại Cao Bằng."})
    w.record("sms", {"id": "s2", "received_ts": 10.9, "to": "+840000090403", "body": "vụ việc 111-2026-000007"})
    w.record("email", {"id": "m1", "received_ts": 10.5, "rcpt_tos": ["police@x"], "subject": "111-2026-000007"})
    w.record("email", {"id": "m9", "received_ts": 11.0, "rcpt_tos": ["ops@x"], "subject": "no case here"})
    assert w.first == {"111-2026-000007": (10.2, "sms")} and w.arrived == {"111-2026-000007": 10.2}
    assert w.messages == {("111-2026-000007", "email"): 1, ("111-2026-000007", "sms"): 2}
    assert w.duplicates == 0  # the same message listed twice by two polls is one message
    w.record("sms", {"id": "s3", "received_ts": 12.0, "to": "+840000090401", "body": "111-2026-000007"})
    assert w.duplicates == 1  # the same case to the same number again


# -- the chart and the printed report ----------------------------------------------------------------
def full_results():
    stages = [stage(50, hops={"client schedule -> intake transaction": lat(4, 9)}, messages={"sms": 3000},
                    events_per_report=3.5, events_by_kind_per_report={
                        "notify notify.notifications.v1 notification.status-changed": 2.5,
                        "intake intake.cases.v1 case.reported": 1.0}),
              stage(100, msg_p99=400, missing=2, reached=60, first_by_channel={"email": 2900, "sms": 98})]
    for s in stages:
        s["misses"] = verdict.misses(s, BOUNDS)
        s["cpu_load"] = {"wall_s": 30.0, "machine_busy_pct": 60.0, "host_steal_pct": 0.0,
                         "per_process": {"intake": {"cpu_s": 6.0}, "postgres": {"cpu_s": 3.0}}}
        s["cpu"] = {"per_process": {"intake": {"ms_per_item": 4.0}, "postgres": {"ms_per_item": 2.0}}}
        s["memory"] = {"per_process": {"intake": {"peak_rss_mb": 120.0, "peak_pss_mb": 110.0},
                                       "postgres": {"peak_rss_mb": 900.0, "peak_pss_mb": 300.0}}}
    r = results(stages)
    r["throughput"] = {"reports": 2000, "concurrency": 32, "accepted": 2000, "errors": {}, "intake_rate_per_s": 300.0,
                       "http_latency": lat(90, 200), "reached": 2000, "first_by_channel": {"email": 2000},
                       "e2e_rate_per_s": 40.0, "e2e_seconds": 50.0, "saturated_latency": lat(9000, 20000),
                       "drained": True, "duplicate_messages": 0}
    r |= {"started_at": "2026-11-25T08:00:00+00:00", "machine": {"cores": 2, "memory_gb": 23.5, "cpu": "AMD EPYC",
                                                                       "os": "Linux", "python": "3.11.7",
                                                                       "postgresql": "18.6", "tansu": "tansu 0.6.0",
                                                                       "packages": {"fastapi": "0.1"}}}
    r["ratios"], r["targets"] = verdict.ratios(r), verdict.targets(r, BOUNDS)
    return r


def test_the_chart_is_a_png_file(tmp_path):
    out = chart.write(full_results(), tmp_path / "sub" / "run.png")
    assert out == tmp_path / "sub" / "run.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_a_run_without_stages_has_no_chart(tmp_path):
    with pytest.raises(ValueError):
        chart.write({"stages": []}, tmp_path / "x.png")


def test_the_report_prints_each_stage_its_verdict_the_rule_ratios_and_targets():
    text = report.render(full_results())
    assert "maximum sustainable rate: 50 reports/s (first miss at 100/s)" in text
    assert "MISS: 2 reports without an agency message" in text
    assert "≥200 / ≥400" in text  # reports missing: the percentiles are lower bounds
    assert "Ratios to the ceilings" in text and "Targets (issue 8" in text and "MISSED" in text
    assert "report->first message, hop by hop (open loop, 50/s)" in text
    assert "memory: peak RSS, MB" in text and "postgres, peak PSS (shared pages once)" in text
    assert "20 % (4.0)" in text  # intake: 6 CPU-s over 30 s, 4 ms per report
    assert "events published per report (50/s stage): 3.5; agency messages per report: sms 2.00" in text
    assert "  notify notify.notifications.v1 notification.status-changed  2.5" in text


def test_events_per_report_are_counted_by_kind_between_two_readings():
    before = {"intake t case.reported": 10, "notify n status": 40}
    after = {"intake t case.reported": 30, "notify n status": 120, "referral r referral.created": 30}
    assert e2e.events_per_report(before, after, 20) == {"notify n status": 4.0, "referral r referral.created": 1.5,
                                                        "intake t case.reported": 1.0}
