"""Where a report's time goes: per-hop delays read back from the services' own timestamps.

Diagnostics only, for the open-loop latency phase. It reads the services' tables (cases, outbox,
referrals, notifications), so a schema change makes it report `unavailable` instead of failing
the run. All clocks are this machine's: PostgreSQL now() (transaction start), the handlers'
datetime.now() and the SMTP sink's or SMS gateway's time.time().
"""
from __future__ import annotations

import asyncpg

from bench.stats import summary_ms

# One pass over each table (hash joins), not a subquery per case: the outboxes have no index on `key`, and a
# stage at 500/s asks about 15,000 cases.
QUERY = """
WITH c AS (
    SELECT id, case_number, extract(epoch FROM created_at)::float8 AS intake_tx
      FROM intake.cases WHERE case_number = ANY($1::text[])),
io AS (SELECT key, extract(epoch FROM min(published_at))::float8 AS t FROM intake.outbox
        WHERE key IN (SELECT id::text FROM c) GROUP BY key),
rr AS (SELECT case_id, extract(epoch FROM min(created_at))::float8 AS t FROM referral.referrals
        WHERE case_id IN (SELECT id FROM c) GROUP BY case_id),
ro AS (SELECT key, extract(epoch FROM min(published_at))::float8 AS t FROM referral.outbox
        WHERE key IN (SELECT id::text FROM c) GROUP BY key),
nn AS (SELECT case_id, extract(epoch FROM min(created_at))::float8 AS t FROM notify.notifications
        WHERE case_id IN (SELECT id FROM c) GROUP BY case_id)
SELECT c.case_number, c.intake_tx, io.t AS intake_published, rr.t AS referral_handled,
       ro.t AS referral_published, nn.t AS notify_queued
  FROM c
  LEFT JOIN io ON io.key = c.id::text
  LEFT JOIN rr ON rr.case_id = c.id
  LEFT JOIN ro ON ro.key = c.id::text
  LEFT JOIN nn ON nn.case_id = c.id
"""

# (label, from, to): consecutive points on one report's way; "scheduled"/"email" come from bench ("email": the
# first agency message, email or SMS, as the SMTP sink or the SMS gateway stamped it).
HOPS = (
    ("client schedule -> intake transaction", "scheduled", "intake_tx"),
    ("intake commit + relay -> Kafka ack", "intake_tx", "intake_published"),
    ("Kafka -> referral handler", "intake_published", "referral_handled"),
    ("referral commit + relay -> Kafka ack", "referral_handled", "referral_published"),
    ("Kafka -> notify handler (queued)", "referral_published", "notify_queued"),
    ("dispatcher claim + send -> first message accepted", "notify_queued", "email"),
)


async def breakdown(dsn: str, scheduled: dict[str, float], emails: dict[str, float]) -> dict:
    """Per-hop p50/p90/p99 for the given case numbers (scheduled send and first agency message known)."""
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
