"""Dead letters: an event that cannot be processed goes to `<topic>.dlq` with why and where from."""
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

DLQ_SUFFIX = ".dlq"
H_REASON = "dlq_reason"
H_ERROR = "dlq_error"
H_TOPIC = "dlq_origin_topic"
H_PARTITION = "dlq_origin_partition"
H_OFFSET = "dlq_origin_offset"
H_CONSUMER = "dlq_consumer"
H_ATTEMPTS = "dlq_attempts"
H_FAILED_AT = "dlq_failed_at"
DLQ_HEADERS = (H_REASON, H_ERROR, H_TOPIC, H_PARTITION, H_OFFSET, H_CONSUMER, H_ATTEMPTS, H_FAILED_AT)


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


async def send_to_dlq(
    producer: AIOKafkaProducer, record: ConsumerRecord, *, consumer: str, reason: str, error: str, attempts: int
) -> None:
    """Copy the record as it came (key, value, headers) and add the dead-letter headers."""
    extra = {
        H_REASON: reason,
        H_ERROR: error[:1000],
        H_TOPIC: record.topic,
        H_PARTITION: str(record.partition),
        H_OFFSET: str(record.offset),
        H_CONSUMER: consumer,
        H_ATTEMPTS: str(attempts),
        H_FAILED_AT: datetime.now(UTC).isoformat(),
    }
    original = [(k, v) for k, v in record.headers or () if k not in DLQ_HEADERS]
    await producer.send_and_wait(
        dlq_topic(record.topic),
        value=record.value,
        key=record.key,
        headers=original + [(k, v.encode()) for k, v in extra.items()],
    )
