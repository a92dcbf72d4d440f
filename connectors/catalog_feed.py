"""The catalog topic: how a catalog change reaches every worker.

``PUT /catalog`` publishes the new catalog's YAML to a single-partition, compacted topic; every
worker reads that topic in full (its own consumer, no group: each worker must see every change,
not a share of them) and switches when a new version arrives. A worker that starts reads the
latest catalog from it first, so a restart keeps the catalog that was put, not the one the
environment names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from connectors.kafka_clients import start

log = logging.getLogger(__name__)
KEY = b"catalog"


async def publish_catalog(bootstrap: str, topic: str, data: bytes, **client_options: object) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **client_options)
    await start(producer)
    try:
        await producer.send_and_wait(topic, data, key=KEY, partition=0)
    finally:
        await producer.stop()


async def latest_catalog(bootstrap: str, topic: str, **client_options: object) -> bytes | None:
    """The last catalog published to the topic, or None if none ever was."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **client_options)
    await start(consumer)
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        if end == 0:
            return None
        consumer.seek(partition, end - 1)
        records = await consumer.getmany(partition, timeout_ms=10_000)
        values = [r.value for r in records.get(partition, []) if r.value]
        return values[-1] if values else None
    finally:
        await consumer.stop()


async def follow_catalog(
    bootstrap: str,
    topic: str,
    on_catalog: Callable[[bytes], Awaitable[None]],
    **client_options: object,
) -> None:
    """Call ``on_catalog`` with every catalog published from now on (runs until cancelled)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **client_options)
    await start(consumer)
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        while True:
            batch = await consumer.getmany(partition, timeout_ms=1000)
            for record in batch.get(partition, []):
                if record.value:
                    try:
                        await on_catalog(record.value)
                    except Exception:  # one bad record must not stop the feed
                        log.exception("catalog from %s@%d could not be applied", topic, record.offset)
    finally:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await consumer.stop()
