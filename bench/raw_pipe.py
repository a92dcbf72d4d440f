"""The raw client ceiling of a consume-process-produce loop: aiokafka alone, no framework.

Run as ``python -m bench.raw_pipe`` with ``BENCH_*`` settings (``bench.throughput`` sets them).
One consumer, assigned every partition of ``BENCH_TOPIC`` by hand (no group), reads from the
start with ``getmany``; each value is decoded with orjson and sent, encoded again, to
``BENCH_OUTPUT_TOPIC`` under the same key. Sends are only enqueued (the producer batches them,
linger 5 ms); there are no offset commits. ``/metrics`` shows ``raw_events_in_total``.
"""

from __future__ import annotations

import asyncio
import os

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from bench.live import serve_counter


async def pipe(bootstrap: str, source: str, target: str, partitions: int, seen: list[int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    try:
        consumer.assign([TopicPartition(source, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    value = orjson.loads(record.value)
                    await producer.send(target, orjson.dumps(value), key=record.key)
                seen[0] += len(records)
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    env = os.environ
    seen = [0]
    serve_counter(int(env["BENCH_WEB_PORT"]), "raw_events_in_total", lambda: seen[0])
    asyncio.run(pipe(env["BENCH_BROKER"], env["BENCH_TOPIC"], env["BENCH_OUTPUT_TOPIC"],
                     int(env["BENCH_PARTITIONS"]), seen))


if __name__ == "__main__":
    main()
