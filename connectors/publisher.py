"""The engine's own Kafka producer: records grouped into record batches, every delivery awaited.

Faust's producer sends one record at a time through a buffer and reports failures nowhere the
agent can see. The commit of a batch (``streams/commit.py``) needs the opposite: hand many records
over at once, learn the offset each partition got, and fail loudly if anything did not arrive, so
that no offset is ever committed past a record that is not in Kafka.

The producer is idempotent (``enable_idempotence``, ``acks=all``): its own retries never write a
record twice or out of order within a partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

from connectors.partitioning import partition_for

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 1_000_000
"""Kafka's default ``max.message.bytes`` (1 MB, less a little for the batch header): the engine
keeps every record it writes below it (dead letters are cut to fit, see streams/messages.py)."""


class OutRecord(NamedTuple):
    """A record to write: partition None means "by key" (the default partitioner). A named tuple:
    a batch makes one per state, history step and output."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class Publisher:
    """Writes records to Kafka and waits for them. ``start`` before use, ``stop`` at the end."""

    def __init__(self, bootstrap: str, linger_ms: int = 0, **client_options: Any) -> None:
        # No lingering: ``send`` hands over whole record batches, already as full as they will
        # get; a linger only delayed each of a commit's two awaited writes (5 ms: half the
        # latency event -> tag change of a worker at 1,000 events/s).
        self.options: dict[str, Any] = dict(
            bootstrap_servers=bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=linger_ms,
            max_request_size=4 * MAX_RECORD_BYTES,
            max_batch_size=1 << 20,
            **client_options,
        )
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        self._started: asyncio.Future[None] | None = None

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "Publisher.start() first"
        return self._producer

    async def start(self) -> None:
        """Connect (once, however many callers ask). The client is made here, inside the event
        loop it will use."""
        if self._started is None:
            self._producer = AIOKafkaProducer(**self.options)
            self._started = asyncio.ensure_future(self._producer.start())
        await asyncio.shield(self._started)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send(self, records: Iterable[OutRecord]) -> dict[tuple[str, int], int]:
        """Write every record, wait until Kafka has all of them, and return the offset of the last
        record written to each (topic, partition). Raises the first error of any record."""
        await self.start()
        grouped: dict[tuple[str, int], list[OutRecord]] = defaultdict(list)
        for record in records:
            partition = record.partition
            if partition is None:
                # The known count without a coroutine: this runs for every output record.
                count = self._partitions.get(record.topic) or await self.partition_count(record.topic)
                partition = partition_for(record.key, count) if record.key is not None else len(grouped) % count
            grouped[(record.topic, partition)].append(record)
        sent: list[tuple[tuple[str, int], int, asyncio.Future[Any]]] = []
        for (topic, partition), group in grouped.items():
            builder, count = self.producer.create_batch(), 0
            for record in group:
                if not _append(builder, record):  # full: send it, start another
                    sent.append(((topic, partition), count, await self._send_batch(builder, topic, partition)))
                    builder, count = self.producer.create_batch(), 0
                    if not _append(builder, record):
                        raise ValueError(f"a record for {topic} is larger than a whole record batch")
                count += 1
            sent.append(((topic, partition), count, await self._send_batch(builder, topic, partition)))
        last: dict[tuple[str, int], int] = {}
        results = await asyncio.gather(*(future for _, _, future in sent), return_exceptions=True)
        for (where, count, _), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            last[where] = max(last.get(where, -1), result.offset + count - 1)
        return last

    async def _send_batch(self, builder: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await self.producer.send_batch(builder, topic, partition=partition)
        return future

    async def send_soon(self, records: Iterable[OutRecord]) -> None:
        """Hand records over without waiting for delivery; a failure is only logged (for markers,
        whose loss costs nothing but a repeated delivery after a crash)."""
        await self.start()
        for record in records:
            delivery = await self.producer.send(record.topic, record.value, key=record.key, partition=record.partition)
            delivery.add_done_callback(_log_failure)

    async def partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            partitions = await self.producer.partitions_for(topic)
            count = self._partitions[topic] = len(partitions)
        return count


def _append(builder: Any, record: OutRecord) -> bool:
    """Add a record to an aiokafka batch; False when the batch is full."""
    return builder.append(key=record.key, value=record.value, timestamp=None, headers=list(record.headers)) is not None


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("a marker record could not be written: %r", future.exception())
