"""Micro-benchmark of the codec steps of a batch (issue 7): parsing input, encoding what is stored
and published.

The fixtures are the throughput benchmark's workloads (``bench.throughput``: *backfill*, 20,000
customers over 200 days in random order, and *live*) folded through ``BatchProcessor`` with a dict
as the table, so the states, changes, tasks and audience days are the ones a worker encodes. Each
step is timed over all its inputs, several passes; the figure is the median pass, in microseconds
per call, and per event of the backfill run (calls per event x cost per call).

Only the public functions of ``state/`` and ``streams/messages.py`` are used, so the same script
times an older checkout too: run it alternately in both trees to compare on a shared machine.

    .venv/bin/python -m bench.codec_cost [EVENTS] [REPEATS]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.throughput import backfill_records, live_records
from connectors.partitioning import partition_for
from rules.catalog import load_default_catalog
from state.cache import StateCache
from state.codec import decode_audience_day, decode_state, encode_audience_day, encode_state, is_customer_key
from state.events import parse_event
from state.times import wall_clock
from streams.messages import change_message, dumps, task_message
from streams.processor import BatchProcessor, Record

PARTITIONS = 8


class Fixtures:
    """What one run of the processor over a workload parses, encodes and publishes."""

    def __init__(self, records: list[Any], batch: int = 500) -> None:
        self.now = wall_clock()
        self.inputs = [(r.topic, r.value) for r in records]
        self.events = len(records)
        table: dict[bytes, bytes | None] = {}
        processor = BatchProcessor(load_default_catalog(), PARTITIONS, lambda p, k: table.get(k), "", 1000,
                                   StateCache(len(records)))
        recs = [Record(r.topic, partition_for(r.key, PARTITIONS), i, r.key, r.value) for i, r in enumerate(records)]
        self.changes: list[Any] = []
        self.tasks: list[Any] = []
        self.state_writes = 0
        self.audience_writes = 0  # audience days stored, over all batches
        for start in range(0, len(recs), batch):
            done = processor.process(recs[start:start + batch], self.now)
            self.changes += done.changes
            self.tasks += done.tasks
            for writes in done.states.values():
                table.update(writes)
                self.state_writes += sum(1 for key in writes if is_customer_key(key))
                self.audience_writes += sum(1 for key in writes if key[:3] == b"\x01a:")
        self.encoded = [value for key, value in table.items() if is_customer_key(key) and value is not None]
        self.states = [decode_state(value) for value in self.encoded]
        self.day_figures = [decode_audience_day(value) for key, value in table.items()
                            if key[:3] == b"\x01a:" and value is not None]


def timed(step: Callable[[], object], calls: int, repeats: int) -> float:
    """Median pass, microseconds per call."""
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        passes.append(time.perf_counter() - start)
    return statistics.median(passes) / calls * 1e6


def measure(fx: Fixtures, repeats: int) -> dict[str, float]:  # noqa: C901 (one closure per step)
    now = fx.now
    inputs, states, encoded, figures = fx.inputs, fx.states, fx.encoded, fx.day_figures
    changes, tasks = fx.changes, fx.tasks

    def parse() -> None:
        for topic, value in inputs:
            parse_event(topic, value, now)

    def encode() -> None:
        for state in states:
            encode_state(state)

    def decode() -> None:
        for data in encoded:
            decode_state(data)

    def days() -> None:
        for day in figures:
            encode_audience_day(day)

    def publish_changes() -> None:
        for change in changes:
            dumps(change_message(change, now))

    def publish_tasks() -> None:
        for task in tasks:
            dumps(task_message(task))

    return {
        "parse_event": timed(parse, len(inputs), repeats),
        "encode_state": timed(encode, len(states), repeats),
        "decode_state": timed(decode, len(encoded), repeats),
        "encode_audience_day": timed(days, max(1, len(figures)), repeats),
        "change message": timed(publish_changes, max(1, len(changes)), repeats),
        "task message": timed(publish_tasks, max(1, len(tasks)), repeats),
    }


def main(argv: Sequence[str]) -> None:
    events = int(argv[0]) if argv else 50_000
    repeats = int(argv[1]) if len(argv) > 1 else 7
    for name, records in (("backfill", backfill_records(events, 20_000, 200)),
                          ("live", live_records(events, 100_000))):
        fx = Fixtures(records)
        figures = measure(fx, repeats)
        print(f"{name}: {fx.events:,} events, {len(fx.states):,} states, {len(fx.changes):,} changes, "
              f"{len(fx.day_figures):,} audience days stored")
        per_event = {"parse_event": 1.0, "encode_state": fx.state_writes / fx.events, "decode_state": 0.0,
                     "encode_audience_day": fx.audience_writes / fx.events,
                     "change message": len(fx.changes) / fx.events, "task message": len(fx.tasks) / fx.events}
        total = 0.0
        for step, micros in figures.items():
            share = micros * per_event[step]
            total += share
            print(f"  {step:<20} {micros:8.2f} us/call  x {per_event[step]:5.3f}/event = {share:6.2f} us/event")
        print(f"  {'total':<20} {total:6.2f} us/event (decoding excluded: cache hits in this run)")


if __name__ == "__main__":
    main(sys.argv[1:])
