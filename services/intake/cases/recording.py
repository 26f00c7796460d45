"""Writing a new case: the hotline's hot path, in one statement and one round trip.

The case, its victims and traffickers, the contact it comes from, its duplicate flags, the stored
response for its Idempotency-Key and its outbox events are written by one statement of
data-modifying CTEs. A single statement is atomic by itself, so without a contact no BEGIN or COMMIT
travels either. The case number comes from a sequence inside the statement; the events and the
stored response that carry it get it there.
"""
import uuid
from typing import Any

import asyncpg

from runtime.statements import Statement, record_json, records_json
from services.intake.cases.duplicates import FLAG_SHARED
from services.intake.models import SCHEMA, cases, outbox, traffickers, victims

# `fresh` holds one row unless the Idempotency-Key was used before: everything else hangs off it,
# so a retry writes nothing (and consumes no case number). A concurrent twin with the same key
# fails on the key's primary key instead, and the whole statement with it.
RECORD_CASE = Statement(f"""
WITH fresh AS (
    SELECT WHERE NOT EXISTS (SELECT FROM {SCHEMA}.idempotency_keys
                             WHERE scope = :idem_scope::text AND key = :idem_key::text)
), number AS (
    SELECT :number_prefix::text || lpad(nextval('{SCHEMA}.case_number_seq')::text, 6, '0') AS value FROM fresh
), c AS (
    INSERT INTO {SCHEMA}.cases
    SELECT (jsonb_populate_record(NULL::{SCHEMA}.cases,
                                  :case::jsonb || jsonb_build_object('case_number', number.value))).*
    FROM number
    RETURNING id, case_number, commune_code, reported_at
), written_victims AS (
    INSERT INTO {SCHEMA}.victims
    SELECT r.* FROM c, jsonb_populate_recordset(NULL::{SCHEMA}.victims, :victims::jsonb) r
), written_traffickers AS (
    INSERT INTO {SCHEMA}.traffickers
    SELECT r.* FROM c, jsonb_populate_recordset(NULL::{SCHEMA}.traffickers, :traffickers::jsonb) r
), attached AS (
    UPDATE {SCHEMA}.contacts SET case_id = c.id FROM c WHERE contacts.id = :contact_id::uuid
), kept AS (
    INSERT INTO {SCHEMA}.idempotency_keys (scope, key, request_hash, status_code, response)
    SELECT :idem_scope::text, :idem_key::text, :idem_hash::bytea, 201,
           jsonb_set(:response::jsonb, '{{case_number}}', to_jsonb(c.case_number))
    FROM c WHERE :idem_key::text IS NOT NULL
), events AS (
    -- An event that carries the case number gets it here, and it as its subject.
    INSERT INTO {SCHEMA}.outbox (id, topic, key, type, source, subject, time, payload, trace)
    SELECT e.id, e.topic, e.key, e.type, e.source,
           CASE WHEN e.payload ? 'case_number' THEN c.case_number ELSE e.subject END, e.time,
           CASE WHEN e.payload ? 'case_number'
                THEN jsonb_set(e.payload, '{{case_number}}', to_jsonb(c.case_number)) ELSE e.payload END,
           e.trace
    FROM c, jsonb_populate_recordset(NULL::{SCHEMA}.outbox, :events::jsonb) e
), me AS (
    SELECT id, commune_code, reported_at FROM c
), mine AS (  -- the new rows are not visible to this statement's reads: take the hashes from its input
    SELECT 1 AS rank, 'same_caller_phone' AS reason, caller_phone_hmac AS value
    FROM {SCHEMA}.contacts WHERE id = :contact_id::uuid AND caller_phone_hmac IS NOT NULL
    UNION ALL SELECT 2, 'same_victim', r.name_index
    FROM jsonb_populate_recordset(NULL::{SCHEMA}.victims, :victims::jsonb) r WHERE r.name_index IS NOT NULL
    UNION ALL SELECT 3, 'same_suspect', r.description_index
    FROM jsonb_populate_recordset(NULL::{SCHEMA}.traffickers, :traffickers::jsonb) r
    WHERE r.description_index IS NOT NULL
), {FLAG_SHARED}
SELECT c.case_number, pg_notify(:channel::text, '') FROM c
""")


async def insert_case(conn: asyncpg.Connection, *, case: dict[str, Any], victim_rows: list[dict],
                      trafficker_rows: list[dict], contact_id: uuid.UUID | None, events: list[dict],
                      channel: str, number_prefix: str, idem_scope: str | None, idem_key: str | None,
                      idem_hash: bytes | None, response: str) -> str | None:
    """Write the case and everything that comes with it. Returns its case number, or None when the
    Idempotency-Key was used before (nothing was written)."""
    row = await conn.fetchrow(RECORD_CASE.sql, *RECORD_CASE.args({
        "case": record_json(cases, case), "victims": records_json(victims, victim_rows),
        "traffickers": records_json(traffickers, trafficker_rows), "contact_id": contact_id,
        "events": records_json(outbox, events), "channel": channel, "number_prefix": number_prefix,
        "idem_scope": idem_scope, "idem_key": idem_key, "idem_hash": idem_hash, "response": response,
    }))
    return None if row is None else row["case_number"]
