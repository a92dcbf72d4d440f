"""Reading the customer table straight from its changelog topic, without a running worker.

The changelog is the durable copy of every customer's state (compacted: the latest record per
key wins). ``tagengine redis-sync`` rebuilds the Redis projection from it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from connectors.kafka_clients import start
from state.codec import is_customer_key


def changelog_topic(app_id: str, table: str = "customers") -> str:
    """Faust's name for a table's changelog topic."""
    return f"{app_id}-{table}-changelog"


async def read_changelog(
    bootstrap: str,
    topic: str,
    progress: Callable[[int, int], None] | None = None,
    **client_options: object,
) -> AsyncIterator[tuple[str, bytes | None]]:
    """Every (customer_id, encoded state or None) record, oldest first, up to the current end
    (the table's other entries, histories and audience figures, are left out).

    A key can come several times; the last one is the state (the projection keeps the newest seq).
    ``progress`` is called with (records read, records in all) every 10,000 records.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **client_options)
    await start(consumer)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise LookupError(f"no changelog topic {topic!r} (is TAGENGINE_APP_ID right?)")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        total = sum(ends[p] - starts[p] for p in partitions)
        remaining = {p for p in partitions if ends[p] > starts[p]}
        read = 0
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for partition, records in batches.items():
                for record in records:
                    if record.offset < ends[partition] and record.key is not None and is_customer_key(record.key):
                        read += 1
                        if progress is not None and read % 10_000 == 0:
                            progress(read, total)
                        yield record.key.decode(), record.value
                    if record.offset + 1 >= ends[partition]:
                        remaining.discard(partition)
        if progress is not None:
            progress(read, total)
    finally:
        await consumer.stop()
