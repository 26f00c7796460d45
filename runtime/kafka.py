"""Kafka clients configured the one way this platform uses them."""
import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from runtime.logging import get_logger

log = get_logger(__name__)


def new_producer(bootstrap: str) -> AIOKafkaProducer:
    # acks=all for durability. No idempotence/transactions: the local broker lacks InitProducerId;
    # duplicates are absorbed by outbox ids plus idempotent consumers instead.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=1,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )


def new_consumer(bootstrap: str, group_id: str, fetch_max_wait_ms: int, **kw) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_poll_records=200,
        **kw,
    )


async def start_with_retry(client, stop: asyncio.Event, what: str, max_backoff: float = 5.0) -> bool:
    """Start a Kafka client, retrying while the broker is unreachable. False if asked to stop first."""
    delay = 0.2
    while not stop.is_set():
        try:
            await client.start()
            return True
        except Exception as exc:  # noqa: BLE001 - any start failure means: try again later
            log.warning("kafka_start_failed", client=what, error=type(exc).__name__)
            try:
                await client.stop()
            except Exception:  # noqa: BLE001
                pass
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, max_backoff)
    return False


class BrokerProbe:
    """Answers 'is the broker reachable now?' for /readyz, with a short timeout."""

    def __init__(self, bootstrap: str):
        self._bootstrap = bootstrap
        self._admin: AIOKafkaAdminClient | None = None

    async def reachable(self, timeout: float = 2.0) -> bool:
        try:
            if self._admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=2000)
                await asyncio.wait_for(admin.start(), timeout)
                self._admin = admin
            await asyncio.wait_for(self._admin.describe_cluster(), timeout)
            return True
        except Exception:  # noqa: BLE001
            await self.close()
            return False

    async def close(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            try:
                await admin.close()
            except Exception:  # noqa: BLE001
                pass
