"""The pure parts of `python -m bench deadlines` (bench/deadlines.py, bench/deadlines_report.py): the
load's shuffle, reading a plan, summing a drain, the per-step counters and the table. No stack."""
import pytest

from bench import deadlines, deadlines_report, machine

EMPTY_PLAN = """Limit  (cost=0.29..12.32 rows=1 width=1447) (actual time=0.004..0.004 rows=0.00 loops=1)
  Buffers: shared hit=2
  ->  LockRows  (cost=0.29..12.32 rows=1 width=1447) (actual time=0.004..0.004 rows=0.00 loops=1)
        Buffers: shared hit=2
        ->  Index Scan using ix_referrals_due on referrals  (cost=0.29..12.31 rows=1 width=1447) (actual time=0.003..0.004 rows=0.00 loops=1)
              Index Cond: (due_at <= '2026-11-24 03:00:00+00'::timestamp with time zone)
              Filter: (due_step IS NOT NULL)
              Buffers: shared hit=2
Planning Time: 0.126 ms
Execution Time: 0.022 ms""".splitlines()
SEQ_PLAN = ["Limit  (cost=0.00..9.0 rows=1 width=1447) (actual time=9.1..9.1 rows=0.00 loops=1)",
            "  Buffers: shared hit=4000 read=12",
            "  ->  LockRows  (cost=0.00..9.0 rows=1 width=1447)",
            "        ->  Seq Scan on referrals  (cost=0.00..9.0 rows=1 width=1447)",
            "Execution Time: 9.2 ms"]


@pytest.mark.parametrize("total", [1, 97, 30_000, 150_000, 7_919 * 3])
def test_the_load_shuffle_visits_every_row_once(total):
    p = deadlines.permutation_prime(total)
    assert len({(i * p) % total for i in range(total)}) == total  # open/acknowledged and deadlines: a bijection


def test_a_plan_is_read_for_its_scan_buffers_and_time():
    facts = deadlines.plan_facts(EMPTY_PLAN)
    assert facts["scan"].startswith("Index Scan using ix_referrals_due on referrals")
    assert facts["buffers"] == "shared hit=2" and facts["execution"] == "0.022 ms"
    assert facts["uses_due_index"] and facts["plan"] == EMPTY_PLAN
    seq = deadlines.plan_facts(SEQ_PLAN)
    assert seq["scan"].startswith("Seq Scan on referrals") and not seq["uses_due_index"]
    assert seq["buffers"] == "shared hit=4000 read=12"


def answer(reminders=0, escalations=0, started=100.0, ended=101.0, batches=(10.0, 20.0), errors=()):
    return {"reminders": reminders, "escalations": escalations, "batch_ms": list(batches), "errors": list(errors),
            "started": started, "ended": ended, "cpu_s": 0.5}


def test_a_drain_by_two_scanners_counts_from_the_first_start_to_the_last_step():
    d = deadlines.drain_summary([answer(reminders=600, started=100.0, ended=101.0),
                                 answer(reminders=400, started=100.2, ended=102.0, batches=(30.0,))], 1000, "remind")
    assert d["steps"] == 1000 and d["wall_s"] == 2.0 and d["steps_per_s"] == 500.0
    assert d["batches"] == 3 and d["batch_ms"]["p50_ms"] == 20.0 and d["steps_per_scanner"] == [600, 400]
    assert d["scanner_cpu_s"] == 1.0


def test_counters_per_step_leave_out_the_benchs_own_reading_transaction():
    per = deadlines.per_item((100, 50, 10, 1000), (111, 52, 20, 3000), 1000)
    assert per == {"pg_commits_per_item": 0.01, "pg_rollbacks_per_item": 0.002, "pg_wal_fsyncs_per_item": 0.01,
                   "pg_wal_bytes_per_item": 2}
    assert deadlines.per_item((1, 0, None, None), (3, 0, None, None), 0)["pg_wal_fsyncs_per_item"] is None


def test_quick_and_default_sizes_and_bursts_that_would_exhaust_the_reminders():
    quick, default = deadlines.parse_args(["--quick"]), deadlines.parse_args([])
    assert (quick.referrals, default.referrals) == (20_000, 100_000)
    assert default.bursts == (1000, 10_000) and default.limit == 100
    assert deadlines.parse_args(["--no-profile", "--skip-ceilings"]).profile_burst == 0
    with pytest.raises(SystemExit):
        deadlines.parse_args(["--referrals", "10000"])  # the default bursts take 46,000


def drain(kind: str, n: int, duplicates: int = 0, errors=()) -> dict:
    d = deadlines.drain_summary([answer(**{"reminders" if kind == "remind" else "escalations": n},
                                        errors=errors)], n, kind)
    d |= deadlines.per_item((0, 0, 0, 0), (n // 100 + 1, 1, n // 100, 500 * n), n)
    d["once"] = {"expected": n, "referrals_with_event": n, "events": n + duplicates, "duplicates": duplicates,
                 "missing": 0}
    d["as_expected"] = not duplicates
    d["made_referrals"] = n - 3
    return d


def results() -> dict:
    plan = deadlines.plan_facts(EMPTY_PLAN)
    empty = {"scans": 1000, "fired": 0, "ms": {"n": 1000, "p50_ms": 0.8, "p90_ms": 1.0, "p99_ms": 1.4, "max_ms": 3.0},
             "explain": {"custom": plan, "generic": plan}, "scanner_cpu_ms_per_scan": 0.65,
             "postgres_cpu_ms_per_scan": 0.15, "pg_commits_per_item": 0.0, "pg_rollbacks_per_item": 1.0,
             "pg_wal_fsyncs_per_item": 0.0}
    cpu = machine.cpu_delta({"scanner": 1.0, "postgres": 2.0}, {"scanner": 2.0, "postgres": 2.5}, 2.0, 1000)
    raw = {"steps": 10_000, "steps_per_s": 15_000.0, "batches": 100, "outbox": False,
           "batch_ms": {"n": 100, "p50_ms": 6.0, "p90_ms": 8.0, "p99_ms": 20.0, "max_ms": 21.0},
           "pg_commits_per_item": 0.01, "pg_wal_fsyncs_per_item": 0.01}
    return {
        "args": {"window_hours": 24.0},
        "load": {"rows": 150_000, "open": 100_000, "acknowledged": 50_000, "units": 6819, "provinces": 34,
                 "table_and_indexes_mb": 230.0, "due_index_mb": 3.1, "matching_s": 2.5, "insert_s": 6.0,
                 "vacuum_s": 2.0},
        "empty": {"fresh": empty, "after bursts": empty, "after VACUUM": empty},
        "explain_burst": {"custom": plan, "generic": plan},
        "bursts": [{"size": n, "remind": drain("remind", n), "escalate": drain("escalate", n)}
                   for n in (1000, 10_000)],
        "concurrent": {"size": 10_000, "remind": drain("remind", 10_000, duplicates=1),
                       "escalate": drain("escalate", 10_000, errors=["DBAPIError: deadlock detected"])},
        "ceilings": {"pgbench": [{"clients": 1, "seconds": 8, "commits_per_s": 3800.0, "latency_avg_ms": 0.3}],
                     "raw": raw, "raw_outbox": raw | {"outbox": True, "steps_per_s": 9000.0},
                     "raw_empty": {"scans": 1000, "ms": empty["ms"]}},
        "cpu": {"empty: fresh": cpu, "1 scanner, 1,000: remind": cpu},
        "machine": {},
    }


def test_the_table_puts_each_figure_beside_its_ceiling_and_flags_what_went_wrong():
    text = deadlines_report.render(results())
    lines = text.splitlines()
    assert any("10,000 reminders" in ln and "raw SELECT + 1 UPDATE per batch" in ln for ln in lines)
    assert any("empty scan p50 / p99 / max" in ln and "0.8 / 1.4 / 3.0 ms" in ln for ln in lines)
    assert any("plan uses ix_referrals_due" in ln and "yes / yes" in ln for ln in lines)
    assert any("2 scanners, 10,000 reminders" in ln and "1 scanner, 10,000 reminders" in ln for ln in lines)
    assert any(ln.startswith("NOTE: 10,000 remind (1 scanner(s))") and "1 duplicates" in ln for ln in lines)
    assert any(ln.startswith("NOTE: 10,000 escalate") and "deadlock detected" in ln for ln in lines)
    assert "Index Scan using ix_referrals_due on referrals" in text
    assert any(ln.startswith("CPU ms per step") for ln in lines)
