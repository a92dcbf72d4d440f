"""A plain Faust agent, the baseline of the live worker: one table write per event, nothing else.

Run as ``python -m bench.plain_agent`` with its settings in the environment (``BENCH_*``, set by
``bench.live``). It reads raw records from one topic and stores each value under its key in a
RocksDB-backed table, so every event costs one changelog message, like the simplest stateful
Faust app. With ``BENCH_OUTPUT_TOPIC`` set it also decodes each value (orjson) and sends it,
encoded again, to that topic: one table write and one output per event (``bench.throughput``).
``/metrics`` shows ``plain_events_in_total`` for the benchmark to poll.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import faust
import orjson
from faust.web import Request, Response, View


def faust_app(env: Mapping[str, str]) -> faust.App:
    """The benchmark agents' Faust app, configured from ``BENCH_*`` as the tag engine's worker is."""
    return faust.App(
        env["BENCH_APP_ID"],
        broker=f"kafka://{env['BENCH_BROKER']}",
        store="rocksdb://",
        datadir=env["BENCH_DATADIR"],
        topic_partitions=int(env["BENCH_PARTITIONS"]),
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        web_port=int(env["BENCH_WEB_PORT"]),
        web_bind="127.0.0.1",
        producer_linger=0.005,  # as the tag engine's worker
    )


def add_counter_page(app: faust.App, name: str, read: Callable[[], int]) -> None:
    """``/metrics`` with the one counter the benchmark polls."""

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(f"{name} {read()}\n".encode(), content_type="text/plain")


def build() -> faust.App:
    env = os.environ
    partitions = int(env["BENCH_PARTITIONS"])
    app = faust_app(env)
    topic = app.topic(env["BENCH_TOPIC"], partitions=partitions, key_serializer="raw", value_serializer="raw")
    output_name = env.get("BENCH_OUTPUT_TOPIC")
    output = app.topic(output_name, key_serializer="raw", value_serializer="raw") if output_name else None
    table = app.Table("latest", partitions=partitions, key_type=bytes, value_type=bytes)
    seen = [0]

    @app.agent(topic)
    async def store(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            table[event.key] = event.value
            if output is not None:
                value = orjson.loads(event.value)
                await output.send(key=event.key, value=orjson.dumps(value))
            seen[0] += 1

    add_counter_page(app, "plain_events_in_total", lambda: seen[0])
    return app


def main() -> None:
    worker = faust.Worker(build(), loglevel="warning")
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
