"""Timing tables: how fast referrals are answered, alerts delivered and cases referred, per period and
category. The number behind each row is published exactly as the count table publishes it (same
suppression), each sub-count is itself suppressed below k, and percentiles and rates appear only where
the numbers they come from are published."""
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.stats.counts import CountQuery, count_table, protect, select_sql
from services.reporting.stats.measures import MEASURES, Measure
from services.reporting.stats.periods import label

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Timing:
    name: str
    description: str
    measure: Measure
    seconds: str  # SQL: the time taken, in seconds (NULL when it has not happened yet)
    answered: str  # the sub-count of rows whose time is known
    answered_name: str
    extra_counts: dict[str, str]  # more sub-counts, e.g. deadline breaches
    rate: tuple[str, str] | None  # (name, numerator sub-count): numerator / n
    by: tuple[str, ...]


def _epoch(later: str, earlier: str) -> str:
    return f"extract(epoch FROM ({later}) - ({earlier}))"


TIMINGS: dict[str, Timing] = {t.name: t for t in (
    Timing("referrals/acknowledgement", "Time from a referral to the unit's first response (acknowledged, "
           "accepted or declined), and the referrals whose deadline passed unanswered.",
           MEASURES["referrals"], _epoch("r.first_response_at", "r.created_at"),
           "count(r.first_response_at)", "responded",
           {"breached": "count(*) FILTER (WHERE r.reminded OR coalesce(r.first_response_at > r.acknowledge_by, false))",
            "within_deadline": "count(*) FILTER (WHERE r.first_response_at <= r.acknowledge_by AND NOT r.reminded)"},
           ("within_deadline_rate", "within_deadline"),
           ("urgency", "agency_kind", "agency_level", "province", "region")),
    Timing("notifications/delivery", "Alerts delivered, failed, and the time from an alert's creation to its "
           "delivery.", MEASURES["notifications"], _epoch("n.delivered_at", "n.created_at"),
           "count(n.delivered_at)", "delivered",
           {"failed": "count(*) FILTER (WHERE n.status LIKE '%failure')"}, ("delivered_rate", "delivered"),
           ("channel", "provider", "kind", "province", "region")),
    Timing("cases/time-to-referral", "Time from a case's report to its first referral.",
           MEASURES["cases-referred"], _epoch("k.first_referred_at", "k.reported_at"),
           "count(k.reported_at)", "with_report_time", {}, None,
           ("province", "region", "urgency", "exploitation")),
)}


async def timing_rows(session: AsyncSession, t: Timing, q: CountQuery, k: int | None) -> list[dict[str, Any]]:
    base = await count_table(session, q, k)
    subcounts = {t.answered_name: t.answered, **t.extra_counts}
    aggregates = [*subcounts.values()] + [
        f"percentile_cont({p / 100}) WITHIN GROUP (ORDER BY {t.seconds})" for p in PERCENTILES]
    sql, params = select_sql(q, aggregates)
    found = {(label(q.group, r[0]), tuple(str(v) for v in r[1:len(q.by) + 1])): r[len(q.by) + 1:]
             for r in (await session.execute(text(sql), params)).all()}
    width = len(subcounts)
    # Each sub-count as its own table, suppressed below k (no margins: nothing sums to a published total).
    grids = {name: protect([[int((found.get((p, c)) or [0] * width)[i]) for c in base.categories]
                            for p in base.periods], k, margins=False).cells
             for i, name in enumerate(subcounts)}
    rows = []
    for i, p in enumerate(base.periods):
        for j, cats in enumerate(base.categories):
            n = base.published.cells[i][j]
            values = found.get((p, cats)) or [0] * width + [None] * len(PERCENTILES)
            row = {"period": p, **dict(zip(q.by, cats)), "n": n}
            for name in subcounts:
                row[name] = grids[name][i][j] if n is not None else None
            answered = row[t.answered_name]
            for pct, value in zip(PERCENTILES, values[width:]):
                row[f"p{pct}_s"] = round(float(value), 3) if answered is not None and value is not None else None
            if t.rate:
                name, numerator = t.rate
                row[name] = round(row[numerator] / n, 4) if n and row.get(numerator) is not None else None
            row["suppressed"] = n is None
            rows.append(row)
    return rows
