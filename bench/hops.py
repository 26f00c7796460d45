"""Where a report's time goes: per-hop delays read back from the services' own timestamps.

Diagnostics only, for the open-loop latency phase. It reads the services' tables (cases, outbox,
referrals, notifications), so a schema change makes it report `unavailable` instead of failing
the run. All clocks are this machine's: PostgreSQL now() (transaction start), the handlers'
datetime.now() and the SMTP sink's time.time().
"""
from __future__ import annotations

import asyncpg

from bench.stats import summary_ms

QUERY = """
SELECT c.case_number,
       extract(epoch FROM c.created_at)::float8 AS intake_tx,
       (SELECT extract(epoch FROM min(o.published_at))::float8 FROM intake.outbox o WHERE o.key = c.id::text)
           AS intake_published,
       (SELECT extract(epoch FROM min(r.created_at))::float8 FROM referral.referrals r WHERE r.case_id = c.id)
           AS referral_handled,
       (SELECT extract(epoch FROM min(o.published_at))::float8 FROM referral.outbox o WHERE o.key = c.id::text)
           AS referral_published,
       (SELECT extract(epoch FROM min(n.created_at))::float8 FROM notify.notifications n WHERE n.case_id = c.id)
           AS notify_queued
  FROM intake.cases c
 WHERE c.case_number = ANY($1::text[])
"""

# (label, from, to): consecutive points on one report's way; "scheduled"/"email" come from bench.
HOPS = (
    ("client schedule -> intake transaction", "scheduled", "intake_tx"),
    ("intake commit + relay -> Kafka ack", "intake_tx", "intake_published"),
    ("Kafka -> referral handler", "intake_published", "referral_handled"),
    ("referral commit + relay -> Kafka ack", "referral_handled", "referral_published"),
    ("Kafka -> notify handler (queued)", "referral_published", "notify_queued"),
    ("dispatcher claim + SMTP -> email received", "notify_queued", "email"),
)


async def breakdown(dsn: str, scheduled: dict[str, float], emails: dict[str, float]) -> dict:
    """Per-hop p50/p90/p99 for the given case numbers (scheduled send and email arrival known)."""
    try:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(QUERY, list(scheduled))
        finally:
            await conn.close()
    except (asyncpg.PostgresError, OSError) as exc:
        return {"unavailable": f"{type(exc).__name__}: {exc}"[:200]}
    points = [dict(r) | {"scheduled": scheduled[r["case_number"]], "email": emails.get(r["case_number"])}
              for r in rows]
    out = {}
    for label, start, end in HOPS:
        deltas = [p[end] - p[start] for p in points if p[start] is not None and p[end] is not None]
        out[label] = summary_ms(deltas)
    return out
