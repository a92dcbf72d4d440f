"""The broker side: finding the local broker, topics, pre-producing input, raw client baselines.

The raw baselines say what the Python Kafka client alone can do on this machine and broker, the
ceiling any Faust worker sits under: an aiokafka producer (200-byte values, linger 5 ms) and an
aiokafka consumer reading with ``getmany``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from bench.common import ROOT, progress

RAW_VALUE_BYTES = 200


def broker(attempts: int = 3, pause: float = 60) -> str:
    """KAFKA_BOOTSTRAP_SERVERS of the local services (started if needed; the call is idempotent).

    ``scripts/services.py`` may be mid-change by someone else: on failure wait and try again.
    """
    command = [sys.executable, str(ROOT / "scripts" / "services.py"), "start", "--json"]
    for attempt in range(1, attempts + 1):
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines:
            try:
                return str(json.loads(lines[-1])["KAFKA_BOOTSTRAP_SERVERS"])
            except (ValueError, KeyError):
                pass
        progress(f"services.py start failed (exit {done.returncode}, attempt {attempt}/{attempts}): "
                 f"{done.stderr.strip()[-300:]}")
        if attempt < attempts:
            time.sleep(pause)
    raise RuntimeError("no Kafka broker: scripts/services.py start --json keeps failing")


def bootstrap_from_env_or_services() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or broker()


# -- topics --


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int,
                        configs: Mapping[str, dict[str, str]] | None = None) -> None:
    """Create the missing topics, with ``configs[name]`` as a topic's settings."""
    configs = configs or {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, partitions, 1, topic_configs=configs.get(name, {}))
                   for name in names if name not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefixes: Iterable[str]) -> list[str]:
    """Delete every topic whose name starts with one of ``prefixes`` (Faust's own topics too)."""
    prefixes = tuple(prefixes)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        doomed = [name for name in await admin.list_topics() if name.startswith(prefixes)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


async def produce(bootstrap: str, records: Iterable[tuple[str, bytes, bytes]]) -> float:
    """Send (topic, key, value) records with the default (murmur2) partitioner; returns seconds.

    The default partitioner puts a key where ``streams.processor.partition_for`` expects it, so
    the worker re-routes nothing.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        for topic, key, value in records:
            await producer.send(topic, value, key=key)  # only enqueues; flush() waits for the broker
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


# -- raw client baselines --


async def raw_producer_rate(bootstrap: str, topic: str, count: int) -> float:
    """Messages/s of one aiokafka producer: 200-byte values, no key, linger 5 ms, until flushed."""
    value = b"x" * RAW_VALUE_BYTES
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        started = time.perf_counter()
        for _ in range(count):
            await producer.send(topic, value)
        await producer.flush()
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def raw_consumer_rate(bootstrap: str, topic: str, count: int, partitions: int) -> float:
    """Messages/s of one aiokafka consumer reading ``count`` messages from the start with getmany.

    Partitions are assigned by hand (no group join), and the clock starts once the first batch is
    in (that batch is not counted), so only steady fetching and decoding is measured.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        while not await consumer.getmany(timeout_ms=1000, max_records=10_000):
            pass  # the first fetch also looks up offsets and connections: not timed
        started = ended = time.perf_counter()
        received = 0
        while received < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if not batches:
                break  # the topic holds fewer messages: measure what there was
            ended = time.perf_counter()
            received += sum(len(records) for records in batches.values())
        return received / (ended - started)
    finally:
        await consumer.stop()


async def end_offsets_total(bootstrap: str, topic: str) -> int:
    """Records ever written to ``topic`` (the sum of its partitions' end offsets; 0 if it is missing)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for d in described for p in d.get("partitions", [])]
    if not partitions:
        return 0
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()
