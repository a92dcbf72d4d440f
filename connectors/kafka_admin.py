"""Kafka administration: make sure the engine's topics exist with the right partition count.

Input topics must have exactly ``TAGENGINE_PARTITIONS`` partitions: the customer table's
changelog is co-partitioned with them, and a different count would put a customer's events and
its state on different partitions. A mismatch is refused with a clear message instead.
"""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from connectors.kafka_clients import start
from state.events import TOPICS

OUTPUT_TOPICS = ("tag-changes", "tasks", "dead-letters")
TICKS = "deadline-ticks"
"""Internal topic: a record on partition p asks the owner of p to fire its due deadlines. Going
through Kafka gives the firing a current event of the right partition, so its table writes and
changelog land where recovery will look for them, and are committed like any event."""
CATALOG = "catalog"
# Ticks are consumed within seconds and mean nothing an hour later; of catalogs only the latest
# matters (compacted).
TOPIC_CONFIGS = {TICKS: {"retention.ms": str(3600 * 1000)}, CATALOG: {"cleanup.policy": "compact"}}
PARTITIONS_OF = {CATALOG: 1}  # one ordered history of catalog versions


class TopicLayoutError(RuntimeError):
    pass


async def ensure_topics(
    bootstrap: str, prefix: str, partitions: int, replication: int = 1, **client_options: object
) -> list[str]:
    """Create missing topics; check the partition count of input topics. Returns created names."""
    logical = (*TOPICS, TICKS, *OUTPUT_TOPICS, CATALOG)
    names = [prefix + name for name in logical]
    configs = {prefix + name: config for name, config in TOPIC_CONFIGS.items()}
    counts = {prefix + name: count for name, count in PARTITIONS_OF.items()}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options)
    await start(admin)
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was quicker
                await admin.create_topics(
                    [
                        NewTopic(name, counts.get(name, partitions), replication, topic_configs=configs.get(name, {}))
                        for name in missing
                    ]
                )
        inputs = [prefix + name for name in (*TOPICS, TICKS)]
        described = await admin.describe_topics(inputs)
        for topic in described:
            count = len(topic.get("partitions", []))
            if count and count != partitions:
                raise TopicLayoutError(
                    f"topic {topic['topic']!r} has {count} partitions but TAGENGINE_PARTITIONS is "
                    f"{partitions}; they must be equal (the customer table is co-partitioned with "
                    "the input topics)"
                )
        return missing
    finally:
        await admin.close()
