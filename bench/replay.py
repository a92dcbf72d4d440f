"""Offline throughput: ``tagengine replay`` over a cached event file, and the pure engine cost.

The input is ``connectors.generator.jsonl_lines`` (deterministic), generated once into
``.cache/bench/``. Replay is timed through ``streams.cli.run_replay``, the function behind
``tagengine replay``, writing to a sink that only counts lines. The engine micro-benchmarks time
single ``process_event`` and ``decide_tags`` calls and report medians (and means: a few very active
customers make the mean much larger than the median, and the mean is what throughput pays).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import itertools
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import orjson

from bench.common import CACHE, median, progress
from connectors import generator
from rules.catalog import Catalog
from rules.engine import decide_tags, process_event
from rules.replay import Replay
from state.customer import CustomerState
from state.events import Event, InvalidEvent, parse_event
from streams.cli import run_replay

FULL_EVENTS = 1_000_000
DEFAULT_CUSTOMERS = 100_000


# -- input file --


def events_file(count: int, customers: int) -> Path:
    """A cached file of at least ``count`` replay lines (readers take the first ``count``).

    ``jsonl_lines(n)`` is a prefix of ``jsonl_lines(m)`` for n < m (same seed), so a smaller run
    reads the head of the 1M file when it exists instead of generating its own. A file made by
    another version of the generator is made again (its fingerprint is kept beside it).
    """
    tag = "" if customers == DEFAULT_CUSTOMERS else f"-c{customers}"
    full = CACHE / f"events-1m{tag}.jsonl"
    if count == FULL_EVENTS or (count < FULL_EVENTS and _is_current(full)):
        path, count = full, FULL_EVENTS
    else:
        path = CACHE / f"events-{count}{tag}.jsonl"
    if not _is_current(path):
        _generate(path, count, customers)
    return path


def _fingerprint() -> str:
    """Changes whenever the generator's code does (its output depends on nothing else here)."""
    return hashlib.sha256(inspect.getsource(generator).encode()).hexdigest()[:16]


def _fingerprint_path(path: Path) -> Path:
    return path.with_name(path.name + ".generator")


def _is_current(path: Path) -> bool:
    mark = _fingerprint_path(path)
    return path.exists() and mark.exists() and mark.read_text().strip() == _fingerprint()


def _generate(path: Path, count: int, customers: int) -> None:
    progress(f"generating {count:,} events over {customers:,} customers into {path} (cached)")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".partial-{os.getpid()}")
    started = time.monotonic()
    try:
        with partial.open("wb") as out:
            for line in generator.jsonl_lines(count, customers=customers):
                out.write(line + b"\n")
        partial.rename(path)  # only a complete file is ever cached
        _fingerprint_path(path).write_text(_fingerprint() + "\n")
    finally:
        partial.unlink(missing_ok=True)
    progress(f"generated in {time.monotonic() - started:.1f} s")


def read_lines(path: Path, count: int) -> list[bytes]:
    with path.open("rb") as source:
        return list(itertools.islice(source, count))


def hottest_share(lines: Iterable[bytes]) -> tuple[str, float]:
    """The busiest customer of the input and its share of the events: it explains the timings."""
    counts: Counter[str] = Counter()
    total = 0
    for line in lines:
        total += 1
        value = orjson.loads(line).get("value")
        if isinstance(value, dict):
            counts[str(value.get("customer_id"))] += 1
    if not counts:
        return "-", 0.0
    customer, hits = counts.most_common(1)[0]
    return customer, hits / max(total, 1)


# -- replay --


class CountingSink(io.RawIOBase):
    """A null output that counts the JSON lines written to it (one per tag change)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.lines += data.count(b"\n")
        return len(data)


class CountingText(io.TextIOBase):
    """The same for the error stream (invalid lines, rejected events)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)


@dataclass(slots=True)
class ReplayRun:
    events: int
    seconds: float
    changes: int
    errors: int
    truncated: bool
    replay: Replay
    interval_rates: list[float] = field(default_factory=list)  # events/s of each progress interval


class _Feed:
    """The input lines, with progress lines and a time budget (0: none).

    With a budget the feed simply ends early: ``run_replay`` then finishes as for a shorter file.
    """

    def __init__(self, lines: Iterable[bytes], count: int, budget: float) -> None:
        self.lines = lines
        self.count = count
        self.budget = budget
        self.fed = 0
        self.truncated = False
        self.rates: list[float] = []

    def __iter__(self) -> Iterator[bytes]:
        started = last = time.monotonic()
        last_fed = 0
        for line in itertools.islice(self.lines, self.count):
            self.fed += 1
            yield line
            if self.fed % 100:  # the clock is read every 100 lines only
                continue
            now = time.monotonic()
            if now - last >= 10:
                rate = (self.fed - last_fed) / (now - last)
                self.rates.append(rate)
                progress(f"replay: {self.fed:,}/{self.count:,} events, {rate:,.0f}/s now, "
                         f"{self.fed / (now - started):,.0f}/s overall")
                last, last_fed = now, self.fed
            if self.budget and now - started >= self.budget:
                self.truncated = True
                progress(f"replay: time budget of {self.budget:.0f} s spent, stopping at {self.fed:,} events")
                return


def time_replay(catalog: Catalog, path: Path, count: int, budget: float) -> ReplayRun:
    """Time ``run_replay`` (the ``tagengine replay`` command without its file opening)."""
    out, err = CountingSink(), CountingText()
    with path.open("rb") as source:
        feed = _Feed(source, count, budget)
        started = time.perf_counter()
        # The sinks only count: they have write() but not the rest of IO's interface.
        replay = run_replay(catalog, feed, path.name, cast(IO[bytes], out), cast(IO[str], err)).replay
        seconds = time.perf_counter() - started
    return ReplayRun(feed.fed, seconds, out.lines, err.lines, feed.truncated, replay, feed.rates)


# -- engine micro-benchmarks --


def parsed_events(lines: Iterable[bytes]) -> list[Event]:
    """Valid events of replay lines, parsed up front so that parsing is not timed."""
    events = []
    for line in lines:
        record = orjson.loads(line)
        value = record["value"]
        raw = value.encode() if isinstance(value, str) else orjson.dumps(value)
        try:
            events.append(parse_event(record["topic"], raw, 2**62))  # no "in the future" here
        except InvalidEvent:
            continue
    return events


def time_process_event(catalog: Catalog, events: list[Event]) -> tuple[float, float]:
    """(median, mean) microseconds of one ``process_event`` call, events applied in order.

    "now" is the largest event time so far, as in replay; each customer's own due deadlines fire
    inside the call, the deadlines of other customers are not (replay's heap is not timed here).
    """
    states: dict[str, CustomerState] = {}
    now = 0
    timings = []
    clock = time.perf_counter_ns
    for event in events:
        now = max(now, event.occurred_at)
        state = states.get(event.customer_id)
        if state is None:
            state = states[event.customer_id] = CustomerState(event.customer_id)
        started = clock()
        process_event(catalog, state, event, now)
        timings.append(clock() - started)
    return median(timings) / 1000, sum(timings) / len(timings) / 1000


def time_decide_tags(catalog: Catalog, states: list[CustomerState], now: int) -> tuple[float, float]:
    """(median, mean) microseconds of one ``decide_tags`` call over these customers at ``now``."""
    timings = []
    clock = time.perf_counter_ns
    for state in states:
        started = clock()
        decide_tags(catalog, state, now)
        timings.append(clock() - started)
    return median(timings) / 1000, sum(timings) / len(timings) / 1000
