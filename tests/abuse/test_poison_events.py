"""Poison events on every topic the services consume, across the running platform (issue 8, "Abuse").

A raw aiokafka producer (not the platform's outbox relay) writes, with valid keys (case ids), to each topic of
schemas/catalog.py that has consumers:

    not-json        a known type's envelope around a value that is not JSON             -> invalid-payload
    no-envelope     a JSON value without the CloudEvents headers                         -> invalid-envelope
    oversized       900 KB of JSON under a known type (see below)                        -> invalid-payload
    missing-fields  a known type whose payload lacks the required fields                 -> invalid-payload
    foreign-type    a valid envelope, but the type is not the platform's                 -> unexpected-type
    other-version   a known type with a .v9 suffix on a .v1 topic                         -> unexpected-type
    misrouted       a known type that the catalogue puts on another topic                -> unexpected-type
    newer-type      a well-formed type of the topic's family and version, unknown so far  -> ignored, counted

The rule for types (schemas.catalog.Catalog.unexpected_type, applied by runtime.consumer): a consumer ignores a
type it does not handle only when the topic may carry it, so that a release can add an event before every
consumer knows it (docs/operations.md: consumers first, then the producer). A type outside the platform's
namespace, of another major version (docs/events.md: a new major version gets a topic of its own) or of
another topic is a dead letter, never silently skipped.

Every invalid one must land in `<topic>.dlq` once for each consumer group that reads the topic (several
groups read the same topic; `dlq_consumer` says which), as it came (key, value, CloudEvents headers) with
the dead-letter headers of runtime/dlq.py; the newer type must be counted as ignored by each group and
dead-lettered by none. Then every group must have moved past every poison (its committed offsets), and a
normal report through intake's API must still go all the way: referred, the agency's email sent, the
referral marked notified on delivery, the case marked referred, and the report counted by reporting.

Size: the local broker (Tansu) took records of 5 MB in a probe; Kafka's default cap (message.max.bytes,
Strimzi's too) is about 1 MB, and the producer's own cap (max.request.size) is 1 MiB. 900 KB is the largest
record that passes both with room for headers, and the dead letter (the same record plus eight headers) still
fits. A record just under the cap whose copy would not fit is dead-lettered without its value
(runtime/dlq.py, `dlq_value_dropped`): `test_a_record_too_large_to_copy_still_becomes_a_letter`.

tests/runtime/test_consumer.py proves the same mechanisms on one consumer in-process, on a scratch topic; this
module proves them on the real topics and the four running services, every consumer group at once. The
letters stay in the real DLQs: a test that reads a DLQ must look only at what arrived since it began (as
tests/faults does), and a reporting rebuild (which replays every topic) writes reporting's letters again.
"""
import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from runtime.dlq import (
    H_ATTEMPTS, H_CONSUMER, H_ERROR, H_FAILED_AT, H_OFFSET, H_PARTITION, H_REASON, H_TOPIC, H_VALUE_DROPPED,
)
from schemas import event_spec_for_model
from schemas.catalog import CATALOG, TYPE_PREFIX
from schemas.events.cases import CaseReported
from schemas.events.contacts import ContactRecorded
from schemas.events.notifications import NotificationStatusChanged
from schemas.events.referrals import ReferralCreated
from tests.e2e.slice import emails_for, operator_headers, report, reported_count
from tests.support import eventually

# Consumer group -> the topics it reads: services/*/app.py (runtime.add_consumer). Checked against the
# catalogue (which services consume which topic) and against the groups the services report at /readyz.
GROUPS: dict[str, tuple[str, ...]] = {
    "intake.referrals": ("referral.referrals.v1",),
    "notify.referrals": ("referral.referrals.v1",),
    "referral.cases": ("intake.cases.v1",),
    "referral.notifications": ("notify.notifications.v1",),
    "reporting.projections": ("intake.cases.v1", "intake.contacts.v1", "notify.notifications.v1",
                              "referral.referrals.v1"),
}
CONSUMED = sorted({t.name for t in CATALOG.topics if t.consumers})
# Per topic, a type that every group reading the topic handles: its bad payloads reach every group's validation.
HANDLED_BY_ALL = {
    "intake.cases.v1": CaseReported,
    "intake.contacts.v1": ContactRecorded,
    "referral.referrals.v1": ReferralCreated,
    "notify.notifications.v1": NotificationStatusChanged,
}
OVERSIZED_BYTES = 900_000
PROVINCE = "52"  # the report that must still go through after the poison: a province only this module reports in
SETTLE_S = 45.0


@dataclass
class Poison:
    name: str
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    reason: str | None  # the dead-letter reason every group must give; None: ignored by design
    partition: int = -1
    offset: int = -1

    @property
    def ce_type(self) -> str | None:
        return dict(self.headers).get("ce_type", b"").decode() or None


def envelope(ce_type: str) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers, as runtime/cloudevents.py writes them, for any type."""
    pairs = [("ce_specversion", "1.0"), ("ce_id", str(uuid.uuid4())), ("ce_source", "/tests/abuse/poison"),
             ("ce_type", ce_type), ("ce_time", datetime.now(UTC).isoformat()), ("content-type", "application/json")]
    return [(k, v.encode()) for k, v in pairs]


def family(topic: str) -> str:
    """The family of the topic's types: `case` for vn.hotline111.case.*.v1 on intake.cases.v1."""
    (name,) = {e.type.removeprefix(f"{TYPE_PREFIX}.").split(".")[0] for e in CATALOG.events_on(topic)}
    return name


def poisons(run: str) -> list[Poison]:
    out = []
    for topic in CONSUMED:
        known = event_spec_for_model(HANDLED_BY_ALL[topic]).type
        elsewhere = next(e.type for e in CATALOG.events if e.topic != topic and e.topic in CONSUMED)
        padding = json.dumps({"case_id": str(uuid.uuid4()), "padding": "x" * OVERSIZED_BYTES}).encode()

        def one(name: str, value: bytes, headers, reason: str | None) -> Poison:
            return Poison(f"{name}@{topic}", topic, str(uuid.uuid4()).encode(), value, headers, reason)

        out += [
            one("not-json", b"{not json, \x00\xff", envelope(known), "invalid-payload"),
            one("no-envelope", b'{"case_id": "a case id without its envelope"}', [], "invalid-envelope"),
            one("oversized", padding, envelope(known), "invalid-payload"),
            one("missing-fields", json.dumps({"case_id": str(uuid.uuid4())}).encode(), envelope(known),
                "invalid-payload"),
            one("foreign-type", b"{}", envelope(f"org.example.poison.{run}.v1"), "unexpected-type"),
            one("other-version", b"{}", envelope(re.sub(r"\.v1$", ".v9", known)), "unexpected-type"),
            one("misrouted", b"{}", envelope(elsewhere), "unexpected-type"),
            one("newer-type", b"{}", envelope(f"{TYPE_PREFIX}.{family(topic)}.poison-{run}.v1"), None),
        ]
    return out


def groups_of(topic: str) -> list[str]:
    return sorted(g for g, topics in GROUPS.items() if topic in topics)


async def dlq_ends(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(f"{t}.dlq", p) for t in CONSUMED
                 for p in sorted(consumer.partitions_for_topic(f"{t}.dlq") or ())]
        return await consumer.end_offsets(parts)
    finally:
        await consumer.stop()


def where(letter) -> tuple[str, int, int, str]:
    """(origin topic, partition, offset, consumer group) of a dead letter."""
    h = {k: v.decode(errors="replace") for k, v in letter.headers}
    return h.get(H_TOPIC), int(h.get(H_PARTITION, -1)), int(h.get(H_OFFSET, -1)), h.get(H_CONSUMER)


async def letters_since(bootstrap: str, since: dict[TopicPartition, int], wanted: set, timeout: float) -> list:
    """The dead letters written after `since`, once every `wanted` (see `where`) is among them, or the time is up."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    letters: list = []
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while not wanted <= {where(letter) for letter in letters} and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                letters.extend(batch)
        return letters
    finally:
        await consumer.stop()


def ignored_count(metrics_text: str, group: str, ce_type: str) -> float:
    pattern = (rf'^events_consumed_total\{{(?=[^}}]*consumer="{re.escape(group)}")(?=[^}}]*type="{re.escape(ce_type)}")'
               rf'(?=[^}}]*outcome="ignored")[^}}]*\}} (\S+)$')
    return sum(float(m.group(1)) for m in re.finditer(pattern, metrics_text, re.MULTILINE))


async def committed(bootstrap: str, partitions: set[TopicPartition]) -> dict[str, dict[TopicPartition, int]]:
    """Each consumer group's committed offsets on `partitions`. Reporting's group is per rebuild generation
    (reporting.projections.g<N>): the newest is the one that runs. (A consumer that never subscribes asks for
    them: the admin client's OffsetFetch is one the local broker does not answer.)"""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = {g[0] if isinstance(g, tuple) else g.group_id for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()
    generations = sorted((int(n.rsplit(".g", 1)[1]), n) for n in names
                         if re.fullmatch(r"reporting\.projections\.g\d+", n))
    actual = {g: g for g in GROUPS if g != "reporting.projections"}
    if generations:
        actual["reporting.projections"] = generations[-1][1]
    out = {}
    for group, name in actual.items():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=name, enable_auto_commit=False)
        await consumer.start()
        try:
            out[group] = {tp: await consumer.committed(tp) for tp in partitions if tp.topic in GROUPS[group]}
        finally:
            await consumer.stop()
    return out


async def test_the_groups_are_the_ones_the_services_run(stack, http):
    """GROUPS is what the poison test checks against: it must be what runs, and cover the catalogue."""
    running = set()
    for service in ("intake", "referral", "notify", "reporting"):
        checks = (await http.get(f"{stack.url(service)}/readyz")).json()["checks"]
        running |= {name.removeprefix("consumer:") for name in checks if name.startswith("consumer:")}
    assert running == set(GROUPS)
    for topic in CATALOG.topics:
        by_service = {g.split(".")[0] for g in groups_of(topic.name)}
        assert by_service == set(topic.consumers), topic.name


async def test_poison_on_every_consumed_topic_is_dead_lettered_by_every_group_and_nothing_stops(stack, http):
    run = uuid.uuid4().hex[:10]
    batch = poisons(run)
    before = await dlq_ends(stack.bootstrap)

    # All at once, with a raw producer (its request cap raised above the oversized record's size).
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        sent = [await producer.send(p.topic, value=p.value, key=p.key, headers=p.headers) for p in batch]
        for p, future in zip(batch, sent):
            meta = await future
            p.partition, p.offset = meta.partition, meta.offset
    finally:
        await producer.stop()

    expected = {(p.topic, p.partition, p.offset, g): p for p in batch if p.reason for g in groups_of(p.topic)}
    seen: dict[tuple, list] = {}
    for letter in await letters_since(stack.bootstrap, before, set(expected), SETTLE_S):
        seen.setdefault(where(letter), []).append((letter, {k: v.decode(errors="replace") for k, v in letter.headers}))

    missing = sorted(f"{p.name} by {g}" for (_t, _p, _o, g), p in expected.items()
                     if (p.topic, p.partition, p.offset, g) not in seen)
    assert not missing, f"not dead-lettered: {missing}"
    for (topic, partition, offset, group), p in expected.items():
        for letter, h in seen[(topic, partition, offset, group)]:
            assert letter.topic == f"{topic}.dlq", p.name
            assert h[H_REASON] == p.reason, (p.name, group, h[H_REASON], h.get(H_ERROR))
            assert h[H_ERROR] and h[H_ATTEMPTS] == "0" and h[H_FAILED_AT], (p.name, group)
            assert H_VALUE_DROPPED not in h, p.name
            # As it came: the key, the value (900 KB included) and the CloudEvents headers.
            assert letter.key == p.key and letter.value == p.value, p.name
            assert [kv for kv in letter.headers if kv[0].startswith("ce_")] == [
                kv for kv in p.headers if kv[0].startswith("ce_")], p.name
    strays = sorted(h.get(H_CONSUMER) for (t, pa, o, _g), found in seen.items() for _l, h in found
                    for p in batch if p.reason is None and (p.topic, p.partition, p.offset) == (t, pa, o))
    assert not strays, f"a newer type of the topic's family was dead-lettered by {strays}"

    # The newer type: ignored and counted by every group of its topic.
    metrics = {s: (await http.get(f"{stack.url(s)}/metrics")).text
               for s in ("intake", "referral", "notify", "reporting")}
    for p in batch:
        if p.reason is None:
            for group in groups_of(p.topic):
                assert ignored_count(metrics[group.split(".")[0]], group, p.ce_type) >= 1, (p.name, group)

    # Every group moved past every poison: its committed offset on the poison's partition is beyond it.
    deadline, behind = time.monotonic() + 20, ["not looked yet"]
    while behind and time.monotonic() < deadline:
        offsets = await committed(stack.bootstrap, {TopicPartition(p.topic, p.partition) for p in batch})
        behind = [f"{p.name} by {g}" for p in batch for g in groups_of(p.topic)
                  if (offsets.get(g, {}).get(TopicPartition(p.topic, p.partition)) or -1) <= p.offset]
        await asyncio.sleep(0.5 if behind else 0)
    assert not behind, f"not committed past: {behind}"

    # And the platform still does its work: a report goes all the way.
    before_count = (await reported_count(http, stack, PROVINCE))["cases_reported"] or 0
    case = await report(http, stack, province_code=PROVINCE, narrative="after the poison")
    referrals_url, case_url = f"{stack.url('referral')}/referrals", f"{stack.url('intake')}/cases/{case['id']}"

    async def delivered_and_followed():
        emails = await emails_for(http, stack, case["case_number"])  # notify.referrals sent it
        referrals = (await http.get(referrals_url, params={"case_id": case["id"]},
                                    headers=operator_headers(stack))).json()  # referral.cases matched it
        notified = [r for r in referrals if r["status"] == "notified"]  # referral.notifications heard back
        status = (await http.get(case_url, headers=operator_headers(stack))).json()["status"]  # intake.referrals
        counted = (await reported_count(http, stack, PROVINCE))["cases_reported"]  # reporting.projections
        done = emails and notified and status == "referred" and counted is not None and counted > before_count
        return done or None

    await eventually(delivered_and_followed, 30, interval=0.25)


async def test_a_record_too_large_to_copy_still_becomes_a_letter(stack):
    """A record just under the producer's 1 MiB cap cannot be copied with eight more headers. The consumer must
    still write a letter (without the value, which stays on the origin topic) and move on, or it would meet
    the record again after every restart, forever (runtime/dlq.py)."""
    topic = "intake.contacts.v1"  # read by reporting alone: one letter expected
    key, headers = str(uuid.uuid4()).encode(), envelope(event_spec_for_model(ContactRecorded).type)
    cap = 1024 * 1024  # the producer's default max_request_size, the services' DLQ producer's too
    overhead = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, b'{"padding": ""}', headers)
    value = json.dumps({"padding": "x" * (cap - overhead - 100)}).encode()  # fits; with 8 more headers, not
    before = await dlq_ends(stack.bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")  # the default cap: 1 MiB
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()
    wanted = (topic, meta.partition, meta.offset, "reporting.projections")
    mine = [letter for letter in await letters_since(stack.bootstrap, before, {wanted}, SETTLE_S)
            if where(letter) == wanted]
    assert mine, "no dead letter for the record too large to copy"
    letter, h = mine[0], {k: v.decode(errors="replace") for k, v in mine[0].headers}
    assert h[H_REASON] == "invalid-payload"
    assert h[H_VALUE_DROPPED] == str(len(value)) and letter.value == b""
    assert dict(letter.headers)["ce_id"] == dict(headers)["ce_id"]  # still says which event it was
