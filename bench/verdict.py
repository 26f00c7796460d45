"""The judgements of `python -m bench`, kept pure (no stack, no clock) so tests can pin them down:
when a stage holds its rate, the maximum sustainable rate and the rate to try next, the ratios of
our figures to the ceilings of the same run, and issue 8's targets.

A *stage* is one open-loop run at a fixed offered rate (bench/e2e.py `stage`). The fields read here:
rate_per_s, accepted, errors, missing, intake_achieved_per_s, delivered_achieved_per_s,
http_latency.p99_ms and first_message_latency.p99_ms.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Bounds:
    """What "latency still holds" means. intake_p99_ms is issue 3's target for POST /cases; message_p99_ms
    is issue 8's for report -> first agency message; min_achieved is the share of the offered rate that
    intake must answer and the platform must deliver (1.0 would fail on the last report's latency)."""

    intake_p99_ms: float = 50.0
    message_p99_ms: float = 250.0
    min_achieved: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)


def achieved_rate(times: Iterable[float]) -> float | None:
    """Events per second between the first and the last of `times` (seconds, any clock): n - 1 intervals.

    At a steady state every event is shifted by the same latency, so this is the offered rate exactly,
    however long that latency is. When the platform falls behind, the last events come late and the
    rate drops below the offered one."""
    ordered = sorted(times)
    if len(ordered) < 2 or ordered[-1] <= ordered[0]:
        return None
    return round((len(ordered) - 1) / (ordered[-1] - ordered[0]), 1)


def _p99(stage: dict, key: str) -> float | None:
    return (stage.get(key) or {}).get("p99_ms")


def rate_misses(stage: dict, min_achieved: float) -> list[str]:
    """Why a stage did not hold its offered rate, whatever its latency: errors, reports that never
    reached an agency, or intake's answers or the first agency messages coming slower than
    `min_achieved` of the offered rate."""
    offered = stage["rate_per_s"]
    out = []
    if errors := sum((stage.get("errors") or {}).values()):
        out.append(f"{errors} request errors")
    if stage.get("missing"):
        out.append(f"{stage['missing']} reports without an agency message")
    for label, key in (("intake answered", "intake_achieved_per_s"), ("agencies reached", "delivered_achieved_per_s")):
        got = stage.get(key)
        if got is None or got < min_achieved * offered:
            out.append(f"{label} {'-' if got is None else f'{got:g}'}/s < {100 * min_achieved:g} % of "
                       f"{offered:g}/s")
    return out


def misses(stage: dict, bounds: Bounds) -> list[str]:
    """Why a stage did not hold; empty when it did. Every condition must hold: `rate_misses` finds
    nothing, and both p99s (POST /cases, report -> first agency message) are within their bounds."""
    out = rate_misses(stage, bounds.min_achieved)
    for label, key, bound in (("POST /cases", "http_latency", bounds.intake_p99_ms),
                              ("report->first message", "first_message_latency", bounds.message_p99_ms)):
        p99 = _p99(stage, key)
        if p99 is None:
            out.append(f"{label}: no samples")
        elif p99 > bound:
            out.append(f"{label} p99 {p99:g} ms > {bound:g} ms")
    return out


def holds(stage: dict, bounds: Bounds) -> bool:
    return not misses(stage, bounds)


def max_sustainable(stages: list[dict], bounds: Bounds) -> dict:
    """The highest offered rate whose stage held, with every slower stage holding too. A stage that held
    above one that did not is listed in `held_above_a_miss`: noise or a warm-up effect, not capacity."""
    ordered = sorted(stages, key=lambda s: s["rate_per_s"])
    best, missed_at, above = None, None, []
    for s in ordered:
        if holds(s, bounds):
            if missed_at is None:
                best = s["rate_per_s"]
            else:
                above.append(s["rate_per_s"])
        elif missed_at is None:
            missed_at = s["rate_per_s"]
    return {"rate_per_s": best, "first_miss_per_s": missed_at, "held_above_a_miss": above,
            "bounds": bounds.as_dict()}


def next_search_rate(stages: list[dict], bounds: Bounds, resolution: float = 0.1) -> float | None:
    """The rate halfway between the highest sustained stage (0 when none held) and the first miss above
    it; None when nothing missed, or when the gap is within `resolution` of the miss (or under 2/s)."""
    found = max_sustainable(stages, bounds)
    lo, hi = found["rate_per_s"] or 0.0, found["first_miss_per_s"]
    if hi is None or hi - lo <= max(2.0, resolution * hi):
        return None
    mid = (lo + hi) / 2
    mid = float(round(mid)) if mid >= 10 else round(mid, 1)
    return None if any(s["rate_per_s"] == mid for s in stages) else mid


# -- ratios to the ceilings ----------------------------------------------------------------------
def _ratio(measured: float | None, ceiling: float | None) -> float | None:
    if measured is None or not ceiling:
        return None
    return float(f"{measured / ceiling:.3g}")  # three significant digits: ratios span 0.001 to 100


def _stage_at(stages: list[dict], rate: float | None) -> dict | None:
    return next((s for s in stages if s["rate_per_s"] == rate), None) if rate is not None else None


def ratios(r: dict) -> list[dict]:
    """Our figures over the ceilings measured in the same run (ratio = measured / ceiling). For a rate,
    1.0 would mean the platform does what the bare part does; for a latency, how many times slower."""
    c = r.get("ceilings") or {}
    api, kafka = c.get("minimal_api") or {}, c.get("kafka") or {}
    pg = {p["clients"]: p for p in c.get("pgbench", [])}
    stages = r.get("stages") or []
    best = (r.get("sustainable") or {}).get("rate_per_s")
    at_best = _stage_at(stages, best)
    lowest = min(stages, key=lambda s: s["rate_per_s"]) if stages else None
    t = r.get("throughput") or {}
    out = []

    def add(figure: str, measured, unit: str, ceiling: str, value, ceiling_unit: str | None = None) -> None:
        out.append({"figure": figure, "measured": measured, "unit": unit, "ceiling": ceiling, "ceiling_value": value,
                    "ceiling_unit": ceiling_unit or unit, "ratio": _ratio(measured, value)})

    api_rate = api.get("rate_per_s")
    add("intake accepted, closed loop (whole platform running)", t.get("intake_rate_per_s"), "req/s",
        "minimal FastAPI+asyncpg INSERT, same client and concurrency", api_rate)
    add("maximum sustainable rate, report to agency", best, "reports/s",
        "minimal FastAPI+asyncpg INSERT endpoint", api_rate, "req/s")
    add("maximum sustainable rate, report to agency", best, "reports/s",
        "pgbench 1-row INSERT, 1 client", (pg.get(1) or {}).get("commits_per_s"), "commits/s")
    if at_best is not None:
        tx = at_best.get("pg_transactions_per_report")
        add("PostgreSQL transactions/s at the maximum sustainable rate", tx and round(tx * best, 1), "xact/s",
            f"pgbench 1-row INSERT, {max(pg) if pg else '-'} clients", (pg.get(max(pg)) if pg else {}).get(
                "commits_per_s"), "commits/s")
        ev = at_best.get("events_per_report")
        add("Kafka events/s at the maximum sustainable rate", ev and round(ev * best, 1), "msg/s",
            "raw aiokafka produce (acks=all)", kafka.get("produce_per_s"))
    if lowest is not None:
        add(f"report->first message p50 at {lowest['rate_per_s']:g}/s",
            (lowest.get("first_message_latency") or {}).get("p50_ms"), "ms",
            f"raw Kafka produce->consume p50 at {kafka.get('latency_rate_per_s', '-')}/s",
            (kafka.get("produce_consume_latency") or {}).get("p50_ms"))
        add(f"POST /cases p50 at {lowest['rate_per_s']:g}/s", (lowest.get("http_latency") or {}).get("p50_ms"),
            "ms", "pgbench 1-row INSERT, 1 client, average latency", (pg.get(1) or {}).get("latency_avg_ms"))
    return out


# -- issue 8's targets ---------------------------------------------------------------------------
MESSAGE_TARGET = (100.0, 250.0)  # hold 100 reports/s with report -> first agency message p99 < 250 ms
INTAKE_TARGET_PER_S = 1000.0
INTAKE_SHARE_OF_MINIMAL = 1 / 3


def targets(r: dict, bounds: Bounds) -> list[dict]:
    """Each target with what this run measured and whether it is met (None: not measured in this run)."""
    rate, p99_bound = MESSAGE_TARGET
    stages = sorted(r.get("stages") or [], key=lambda s: s["rate_per_s"])
    at = next((s for s in stages if s["rate_per_s"] >= rate), None)
    out = []
    if at is None:
        out.append({"target": f"report->first agency message p99 < {p99_bound:g} ms while holding {rate:g}/s",
                    "measured": "no stage at or above that rate", "met": None})
    else:
        p99 = (at.get("first_message_latency") or {}).get("p99_ms")
        reasons = rate_misses(at, bounds.min_achieved)
        met = not reasons and p99 is not None and p99 < p99_bound
        out.append({"target": f"report->first agency message p99 < {p99_bound:g} ms while holding {rate:g}/s",
                    "measured": f"p99 {'-' if p99 is None else f'{p99:g}'} ms at {at['rate_per_s']:g}/s"
                                + (f" ({'; '.join(reasons)})" if reasons else ""),
                    "met": met})
    t = (r.get("throughput") or {}).get("intake_rate_per_s")
    out.append({"target": f"intake >= {INTAKE_TARGET_PER_S:,.0f} cases/s on one process",
                "measured": "not measured" if t is None else f"{t:g}/s (closed loop, whole platform on the cores)",
                "met": None if t is None else t >= INTAKE_TARGET_PER_S})
    api = ((r.get("ceilings") or {}).get("minimal_api") or {}).get("rate_per_s")
    share = _ratio(t, api)
    out.append({"target": "intake >= 1/3 of the minimal insert endpoint's rate",
                "measured": "not measured" if share is None else f"{t:g} / {api:g} = {share:.3f}",
                "met": None if share is None else share >= INTAKE_SHARE_OF_MINIMAL})
    return out
