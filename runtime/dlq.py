"""Dead letters: an event that cannot be processed goes to `<topic>.dlq` with why and where from."""
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
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
H_VALUE_DROPPED = "dlq_value_dropped"  # the letter left the value behind, on the origin topic: its size in bytes
DLQ_HEADERS = (H_REASON, H_ERROR, H_TOPIC, H_PARTITION, H_OFFSET, H_CONSUMER, H_ATTEMPTS, H_FAILED_AT, H_VALUE_DROPPED)
_KEPT_WHEN_DROPPED = ("ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "ce_specversion")


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
    try:
        await producer.send_and_wait(
            dlq_topic(record.topic),
            value=record.value,
            key=record.key,
            headers=original + [(k, v.encode()) for k, v in extra.items()],
        )
    except MessageSizeTooLargeError:
        # The copy is the record plus the headers above, and the client and broker cap a record's size: a record
        # just under the cap cannot be copied. The letter must still go, or the consumer would meet this record
        # again after every restart and never move on. It goes without the value (and all but the CloudEvents
        # attributes): the origin topic keeps the record at the partition and offset named (runtime.dlq_cli
        # replays it from there).
        kept = [(k, v) for k, v in original if k in _KEPT_WHEN_DROPPED and len(v) <= 256]
        extra[H_VALUE_DROPPED] = str(len(record.value or b""))
        await producer.send_and_wait(
            dlq_topic(record.topic),
            value=b"",
            key=record.key,
            headers=kept + [(k, v.encode()) for k, v in extra.items()],
        )
