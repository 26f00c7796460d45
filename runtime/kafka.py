"""Kafka clients configured the one way this platform uses them."""
import asyncio
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from runtime.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class KafkaAccess:
    """Where the brokers are and how to prove who we are: plaintext on a developer's machine; TLS with a
    SCRAM user (its ACLs allow only the service's own topics and groups) on Kubernetes."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None  # None with TLS: the system's trust store

    def client_args(self) -> dict:
        args: dict = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            args["ssl_context"] = create_ssl_context(cafile=self.ca_file)
        if self.security_protocol.startswith("SASL_"):
            # aiokafka takes SCRAM's credentials under the PLAIN names too.
            args |= {"sasl_mechanism": self.sasl_mechanism, "sasl_plain_username": self.username,
                     "sasl_plain_password": self.password}
        return args


def client_args(access: KafkaAccess | str) -> dict:
    """aiokafka's connection arguments; a bare bootstrap string means plaintext (local broker, benches)."""
    return (access if isinstance(access, KafkaAccess) else KafkaAccess(access)).client_args()


def new_producer(access: KafkaAccess | str) -> AIOKafkaProducer:
    # acks=all for durability. No idempotence/transactions: the local broker lacks InitProducerId;
    # duplicates are absorbed by outbox ids plus idempotent consumers instead.
    return AIOKafkaProducer(
        **client_args(access),
        acks="all",
        enable_idempotence=False,
        linger_ms=1,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )


def new_consumer(access: KafkaAccess | str, group_id: str, fetch_max_wait_ms: int, **kw) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_args(access),
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

    def __init__(self, access: KafkaAccess | str):
        self._access = access
        self._admin: AIOKafkaAdminClient | None = None

    async def reachable(self, timeout: float = 2.0) -> bool:
        try:
            if self._admin is None:
                admin = AIOKafkaAdminClient(**client_args(self._access), request_timeout_ms=2000)
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
