"""A minimal Quix Streams app: one state write and one output per event.

Run as ``python -m bench.quix_minimal`` with ``BENCH_*`` settings (``bench.throughput`` sets them;
needs the ``bench`` extra: ``pip install -e '.[bench]'``). It reads ``BENCH_TOPIC`` (JSON values),
stores each value as the latest of its key in Quix's RocksDB state (with its changelog topic,
Quix's default), and sends it to ``BENCH_OUTPUT_TOPIC``: what a user who writes the catalog by hand
in Quix Streams starts from. ``/metrics`` shows ``quix_events_in_total``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from quixstreams import Application, State

from bench.live import serve_counter


def build(env: Mapping[str, str], seen: list[int]) -> Application:
    app = Application(
        broker_address=env["BENCH_BROKER"],
        consumer_group=env["BENCH_APP_ID"],
        auto_offset_reset="earliest",
        state_dir=env["BENCH_DATADIR"],
        loglevel="WARNING",
        processing_guarantee="at-least-once",
    )
    source = app.topic(env["BENCH_TOPIC"], key_deserializer="bytes", value_deserializer="json")
    target = app.topic(env["BENCH_OUTPUT_TOPIC"], key_serializer="bytes", value_serializer="json")

    def remember(value: dict[str, Any], state: State[str, Any]) -> None:
        state.set("latest", value)
        seen[0] += 1

    frame = app.dataframe(source)
    frame = frame.update(remember, stateful=True)
    frame.to_topic(target)
    return app


def main() -> None:
    env = os.environ
    seen = [0]
    serve_counter(int(env["BENCH_WEB_PORT"]), "quix_events_in_total", lambda: seen[0])
    build(env, seen).run()


if __name__ == "__main__":
    main()
