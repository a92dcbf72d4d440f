"""A Faust agent that only takes batches and decodes them: what Faust's consumption path costs.

Run as ``python -m bench.faust_take`` with ``BENCH_*`` settings (``bench.throughput`` sets them).
It reads raw records with ``take_events(2000, 0.05)``, the worker's batch shape, and decodes each
value with orjson: no table, no output. Faust's default acknowledgements and commits stay on, as
in any plain Faust app. ``/metrics`` shows ``take_events_in_total``.
"""

from __future__ import annotations

import os
from typing import Any

import faust
import orjson

from bench.plain_agent import add_counter_page, faust_app

BATCH_SIZE = 2000
BATCH_SECONDS = 0.05


def build() -> faust.App:
    env = os.environ
    app = faust_app(env)
    topic = app.topic(env["BENCH_TOPIC"], partitions=int(env["BENCH_PARTITIONS"]),
                      key_serializer="raw", value_serializer="raw")
    seen = [0]

    @app.agent(topic)
    async def decode(stream: Any) -> None:  # faust's StreamT does not declare take_events
        async for events in stream.take_events(BATCH_SIZE, BATCH_SECONDS):
            for event in events:
                orjson.loads(event.value)
            seen[0] += len(events)

    add_counter_page(app, "take_events_in_total", lambda: seen[0])
    return app


def main() -> None:
    worker = faust.Worker(build(), loglevel="warning")
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
