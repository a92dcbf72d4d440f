"""CPU cost per event of the pure engine (``process_event``), and a digest of everything it produced.

Events are generated once into a file (``make``), so that two trees of the code can be run over
the very same input (``run``, from each tree's directory) and compared: the figure is engine time
only (events are parsed before the clock starts; no codec, no Kafka), and the digest covers every
change, every task, and each customer's final state, after a last firing of all deadlines far in
the future (the timer path). Two trees with the same digest produced the same outputs.

    python bench/engine_cost.py make live|backfill|features EVENTS FILE
    python bench/engine_cost.py run FILE [--catalog YAML] [--repeat N] [--digest OUT [--horizon DAYS]]

``features`` is the backfill workload with birthdays, phones and e-mails added to profile
updates, for catalogs that read calendar facts. Run from the tree to measure: its ``rules`` and
``state`` are the ones imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import random
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, os.getcwd())

from bench.throughput import backfill_records, live_records
from rules.catalog import Catalog, load_catalog, load_default_catalog
from rules.engine import Result, fire_deadlines, process_event
from state.customer import CustomerState
from state.events import Event, InvalidEvent, parse_event
from state.times import DAY, wall_clock

Input = tuple[int, list[tuple[str, bytes]]]  # receive time, (topic, value) per record


def make(workload: str, count: int, out: Path) -> None:
    now = wall_clock()
    records = live_records(count, 100_000) if workload == "live" else backfill_records(count, 20_000, 200)
    pairs = [(r.topic, r.value) for r in records]
    if workload == "features":
        pairs = [_with_profile_fields(topic, value, index) for index, (topic, value) in enumerate(pairs)]
    out.write_bytes(pickle.dumps((now, pairs)))


def _with_profile_fields(topic: str, value: bytes, index: int) -> tuple[str, bytes]:
    if topic != "customers":
        return topic, value
    rng = random.Random(index)
    body = orjson.loads(value)
    body["birthday"] = f"{rng.randint(1, 12):02d}-{rng.randint(1, 28) if rng.random() < 0.95 else 29:02d}"
    body["registered_at"] = body["occurred_at"]
    if rng.random() < 0.5:
        body["phone"] = "13800000000"
    if rng.random() < 0.5:
        body["email"] = "someone@example.com"
    return topic, orjson.dumps(body)


def events_of(data: Input) -> tuple[int, list[Event]]:
    now, pairs = data
    events = []
    for topic, value in pairs:
        with contextlib.suppress(InvalidEvent):  # dead letters: not the engine's work
            events.append(parse_event(topic, value, now))
    return now, events


def one_pass(
    catalog: Catalog, events: list[Event], now: int, keep: bool
) -> tuple[float, dict[str, CustomerState], list[Result]]:
    """Every event through ``process_event``; the results are kept only when asked: holding 100k
    of them makes the garbage collector's passes longer, a cost the engine has not in service."""
    states: dict[str, CustomerState] = {}
    results = []
    started = time.process_time()
    for event in events:
        state = states.get(event.customer_id)
        if state is None:
            state = states[event.customer_id] = CustomerState(event.customer_id)
        result = process_event(catalog, state, event, now)
        if keep:
            results.append(result)
    return time.process_time() - started, states, results


def digest(catalog: Catalog, states: dict[str, CustomerState], results: list[Result], now: int, out: Path | None,
           horizon: int) -> str:
    lines = []
    for result in results:
        lines.append(repr((result.changes, result.tasks, result.outcome, str(result.rejected))))
    later = now + horizon * DAY
    for customer_id in sorted(states):
        state = states[customer_id]
        fired = fire_deadlines(catalog, state, later)
        lines.append(repr((fired.changes, fired.tasks)))
        lines.append(_state_text(state))
    text = "\n".join(lines)
    if out is not None:
        out.write_text(text)
    changes = sum(len(r.changes) for r in results)
    tasks = sum(len(r.tasks) for r in results)
    return f"{hashlib.sha256(text.encode()).hexdigest()[:16]} ({len(results)} events, {changes} changes, {tasks} tasks)"


def _state_text(state: CustomerState) -> str:
    fields = {name: getattr(state, name) for name in CustomerState.__slots__}  # type: ignore[attr-defined]
    fields["expired"] = sorted(fields["expired"])
    return repr(fields)


def main(argv: list[str]) -> None:
    if argv[0] == "make":
        make(argv[1], int(argv[2]), Path(argv[3]))
        return
    data: Input = pickle.loads(Path(argv[1]).read_bytes())
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    catalog = load_catalog(options["--catalog"]) if "--catalog" in options else load_default_catalog()
    now, events = events_of(data)
    seconds = []
    for _ in range(int(options.get("--repeat", "1"))):
        spent, states, results = one_pass(catalog, events, now, keep="--digest" in options)
        seconds.append(spent)
    best, median = min(seconds), statistics.median(seconds)
    print(f"{len(events) / median:,.0f} events/s median ({median / len(events) * 1e6:.1f} us/event, "
          f"best {best / len(events) * 1e6:.1f}) over {len(seconds)} passes")
    if "--digest" in options:
        print("digest", digest(catalog, states, results, now, Path(options["--digest"]),
                                   int(options.get("--horizon", "400"))))


if __name__ == "__main__":
    main(sys.argv[1:])
