"""Prometheus metrics. Labels are bounded sets (types, topics, routes): never ids or personal data."""
from prometheus_client import Counter, Gauge, Histogram

HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_PRODUCED = Counter("events_produced_total", "Events published by the outbox relay.", ["type"])
EVENTS_CONSUMED = Counter(
    "events_consumed_total", "Events handled by consumers.", ["consumer", "type", "outcome"]
)
EVENTS_FAILED = Counter("events_failed_total", "Event processing attempts that failed.", ["consumer", "type"])
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered_total", "Events sent to a dead-letter topic.", ["consumer", "topic", "reason"]
)
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox events not yet published.", ["service"])
OUTBOX_OLDEST_AGE = Gauge("outbox_oldest_unpublished_seconds", "Age of the oldest unpublished event.", ["service"])
CONSUMER_LAG = Gauge("consumer_lag", "Records behind the partition end.", ["consumer", "topic", "partition"])
EVENT_HANDLE_SECONDS = Histogram(
    "event_handle_duration_seconds",
    "Time to handle one event, including its transaction.",
    ["consumer", "type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
