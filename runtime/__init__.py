"""Shared plumbing for every service: settings, database, outbox relay, idempotent consumers,
dead letters, tracing, metrics, logs and the HTTP edge. Services hold the domain; this holds the pipes."""
