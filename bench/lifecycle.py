"""Tag lifecycle figures (issue 9): history size, audience storage, counts and audience latency
with a million customers, and the speed of a backtest.

- A year of generated events for ``customers`` customers (``demo_events``, event times spread
  evenly over 365 days) goes through ``tagengine replay --audience 1d`` (``replay_lines`` feeding a
  ``Backtest``), timed; the same changes are folded into each customer's history and into the
  audience figures of 8 partitions, as a worker keeps them, and their encoded sizes measured.
- The answers of ``GET /tags`` and ``GET /tags/<tag>/audience`` are computed from the counters a
  worker keeps (``state/audience.py``); with a million customers what matters is how many days and
  tags those counters hold, not how many customers: the figure is taken on 8 partitions holding
  400 days of hourly figures for every tag of the catalog (the worst case: every hour of every
  tag has moves), with holders adding up to a million. The HTTP round trip adds to it.

``python -m bench.lifecycle [--customers N] [--events N]`` runs it alone.
"""

from __future__ import annotations

import argparse
import io
import time
from collections import Counter

import orjson

from bench.common import Results, median, percentile, progress
from connectors.generator import demo_events
from connectors.partitioning import partition_for
from rules.backtest import Backtest
from rules.catalog import Catalog, load_default_catalog
from rules.engine import Result, TagChange
from rules.history import step_of
from state.audience import RETENTION, STEPS, Audience
from state.codec import encode_audience_day, encode_step
from state.times import DAY, HOUR, wall_clock
from streams.cli import replay_lines

PARTITIONS = 8
YEAR = 365 * DAY


def run(results: Results, catalog: Catalog, customers: int, events: int) -> None:
    lines = _a_year_of_events(customers, events)
    backtest = Backtest(catalog)
    changes: list[TagChange] = []

    def take(result: Result, _: int) -> None:
        backtest.add(result)
        changes.extend(result.changes)

    progress(f"backtest: a year of {len(lines):,} events over {customers:,} customers, step 1d")
    started = time.perf_counter()
    replayed = replay_lines(catalog, lines, "year", io.StringIO(), take)
    assert replayed.replay.now is not None and backtest.first is not None
    rows = backtest.rows(backtest.first, replayed.replay.now + 1, STEPS["1d"])
    seconds = time.perf_counter() - started
    rate = len(lines) / seconds
    per_customer_year = len(lines) / customers
    results.add("lifecycle", "backtest (replay --audience 1d)", rate, "events/s",
                f"{len(lines):,} events, {len(changes):,} changes, {len(rows):,} rows in {seconds:.1f} s; "
                f"a year of 100,000 such customers ({per_customer_year:.0f} events each) would take about "
                f"{100_000 * per_customer_year / rate / 60:.0f} min")
    _history_sizes(results, changes)
    _audience_storage(results, catalog, changes)
    _latency_with_a_million(results, catalog)


def _a_year_of_events(customers: int, events: int) -> list[bytes]:
    start = wall_clock() - YEAR
    generated = demo_events(customers, seed=9, start=start, step=YEAR // events, broken=0)
    return [orjson.dumps({"topic": r.topic, "value": orjson.loads(r.value)})
            for _, r in zip(range(events), generated, strict=False)]


def _history_sizes(results: Results, changes: list[TagChange]) -> None:
    sizes: Counter[str] = Counter()
    for change in changes:
        sizes[change.customer_id] += len(encode_step(step_of(change)))
    values = sorted(sizes.values())
    results.add("lifecycle", "history bytes per customer, median", percentile(values, 0.5), "B",
                f"{len(values):,} customers after a year, one stored step per change")
    results.add("lifecycle", "history bytes per customer, p99", percentile(values, 0.99), "B",
                f"max {values[-1]:,} B")


def _audience_storage(results: Results, catalog: Catalog, changes: list[TagChange]) -> None:
    partitions = [Audience() for _ in range(PARTITIONS)]
    for change in changes:
        partition = partition_for(change.customer_id.encode(), PARTITIONS)
        partitions[partition].move(change.from_tag, change.to_tag, change.effective_at)
    stored = sum(len(encode_audience_day(figures)) for a in partitions for figures in a.days.values())
    tags = len({tag for a in partitions for figures in a.days.values() for tag in figures})
    span = (max(c.effective_at for c in changes) - min(c.effective_at for c in changes)) / YEAR
    results.add("lifecycle", "audience storage per tag-year", stored / max(1, tags) / max(span, 1 / 365), "B",
                f"{stored:,} B for {tags} tags over {span * 365:.0f} days, {PARTITIONS} partitions")


def _latency_with_a_million(results: Results, catalog: Catalog) -> None:
    tags = list(catalog.tags)
    now = wall_clock()
    partitions = [_full_partition(tags, now) for _ in range(PARTITIONS)]
    progress(f"timing /tags and /tags/<tag>/audience on {PARTITIONS} partitions x 400 days x {len(tags)} tags")
    work = {
        "/tags counts": lambda: sum((Counter(a.holders) for a in partitions), Counter()),
        "/tags/<tag>/audience, 90 days by day": lambda: [a.series(tags[0], now - 90 * DAY, now, DAY)
                                                         for a in partitions],
        "/tags/<tag>/audience, 7 days by hour": lambda: [a.series(tags[0], now - 7 * DAY, now, HOUR)
                                                         for a in partitions],
    }
    for name, answer in work.items():
        timings = []
        for _ in range(7):
            started = time.perf_counter()
            answer()
            timings.append((time.perf_counter() - started) * 1000)
        results.add("lifecycle", f"{name}, 1M customers (median)", median(timings), "ms",
                    "engine-side work of one request on one worker holding every partition")


def _full_partition(tags: list[str], now: int) -> Audience:
    """One partition's counters: an eighth of a million holders of every tag, and moves in every
    hour of the last 400 days."""
    audience = Audience()
    for tag in tags:
        audience.holders[tag] = 1_000_000 // PARTITIONS
    for day in range((now - RETENTION) // DAY, now // DAY + 1):
        audience.load_day(day, {tag: [3, 2] * 24 for tag in tags})
    return audience


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=400_000)
    args = parser.parse_args()
    results = Results()
    run(results, load_default_catalog(), args.customers, args.events)
    print(results.table())


if __name__ == "__main__":
    main()
