"""``tagengine watch``: tag changes and tasks as one human-readable line each, as they happen."""

from __future__ import annotations

import orjson
from aiokafka import AIOKafkaConsumer

from connectors.kafka_clients import start


def describe(topic: str, value: dict[str, object]) -> str:
    if topic.endswith("tasks"):
        return f"TASK   {value['customer_id']:<10} -> {value['assignee']}: {value['title']} (due {value['due_at']})"
    if topic.endswith("dead-letters"):
        return f"DEAD   {value['source_topic']}@{value['partition']}:{value['offset']}: {value['error']}"
    move = f"{value['from'] or '-'} -> {value['to'] or '-'}"
    return (
        f"CHANGE {value['customer_id']:<10} {value['dimension']:<10} {move:<34} "
        f"[{value['trigger']}] {value['effective_at']}"
    )


async def watch(bootstrap: str, prefix: str, from_beginning: bool = False, **client_options: object) -> None:
    topics = [prefix + name for name in ("tag-changes", "tasks", "dead-letters")]
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        **client_options,
    )
    await start(consumer)
    try:
        async for message in consumer:
            print(describe(message.topic, orjson.loads(message.value)), flush=True)
    finally:
        await consumer.stop()
