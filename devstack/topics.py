"""Create every catalog topic and its dead-letter topic on a local broker (idempotent).

Local only: in Kubernetes the topics come from Strimzi KafkaTopic manifests built from the same
catalog. Tansu cannot add partitions later, so each topic is created with its final count.
"""
from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


def wanted_topics(catalog=None) -> dict[str, int]:
    """Topic name -> partition count, DLQs included."""
    if catalog is None:
        from schemas.catalog import CATALOG as catalog
    wanted: dict[str, int] = {}
    for topic in catalog.topics:
        wanted[topic.name] = topic.partitions
        if topic.dead_letters:
            wanted[topic.dlq] = topic.partitions
    return wanted


async def ensure_topics(bootstrap: str, *, replication_factor: int = 1, catalog=None) -> list[str]:
    """Create the missing topics; return the names created. Existing ones are left alone."""
    wanted = wanted_topics(catalog)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        missing = sorted(set(wanted) - set(await admin.list_topics()))
        if not missing:
            return []
        resp = await admin.create_topics(
            [NewTopic(name, num_partitions=wanted[name], replication_factor=replication_factor) for name in missing]
        )
        for name, code, *rest in resp.topic_errors:
            # A concurrent creator may win the race: that is success too.
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"creating topic {name} failed: error {code} {rest[0] if rest else ''}")
        log.info("created topics %s", missing)
        return missing
    finally:
        await admin.close()
