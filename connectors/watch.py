"""``tagengine watch``: tag changes, tasks and dead letters as they happen, one line each (for a
person, or JSON for a script), optionally only those of one customer or tag."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer

from connectors.kafka_clients import start


@dataclass(frozen=True, slots=True)
class Filter:
    topics: tuple[str, ...]  # logical names: tag-changes, tasks, dead-letters
    customer: str | None = None
    tag: str | None = None

    def wants(self, topic: str, value: dict[str, object]) -> bool:
        if self.customer is not None and value.get("customer_id") != self.customer:
            return False
        if self.tag is None:
            return True
        if topic.endswith("tag-changes"):
            return self.tag in (value.get("from"), value.get("to"))
        # A task is created by entering a tag: its rule is that tag's (dimension.tag).
        return topic.endswith("tasks") and str(value.get("rule_id", "")).endswith("." + self.tag)


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


async def watch(
    bootstrap: str, prefix: str, wanted: Filter, from_beginning: bool = False, as_json: bool = False,
    **client_options: object,
) -> None:
    consumer = AIOKafkaConsumer(
        *(prefix + name for name in wanted.topics),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        **client_options,
    )
    await start(consumer)
    try:
        async for message in consumer:
            value = orjson.loads(message.value)
            if wanted.wants(message.topic, value):
                if as_json:
                    print(orjson.dumps({"topic": message.topic, "value": value}).decode(), flush=True)
                else:
                    print(describe(message.topic, value), flush=True)
    finally:
        await consumer.stop()
