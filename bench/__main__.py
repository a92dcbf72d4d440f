"""``python -m bench``: every benchmark of the engine in one run, then a summary table.

Sections, in order (each figure is printed as soon as it is known, the summary at the end):

- replay: ``tagengine replay`` over 1M generated events, and the engine cost per call;
- state: encoded customer state sizes;
- lifecycle: a backtest over a year of events, history and audience sizes, and the work of
  ``GET /tags`` and ``GET /tags/<tag>/audience`` with a million customers (``bench/lifecycle.py``);
- kafka: raw aiokafka producer and consumer on the local broker;
- plain: a plain Faust agent with one table write per event;
- worker: one ``tagengine worker`` (RocksDB store), and its ratios to the baselines;
- timers: deadline index memory and rebuild time (1M customers, no broker), and fire delay of
  100k live deadlines while other events flow (``bench/timers_live.py``);
- throughput: raw aiokafka, Faust, Quix Streams and one and two workers side by side on a live and
  a backfill backlog; latency event -> tag change at half load; a worker's memory with 1M customers
  (``bench/throughput.py``);
- api: ``GET /customers/<id>`` requests per second on one worker;
- catalog: the cost of re-evaluating customers after a catalog change (1M, engine only) and the
  live re-evaluation rate after ``PUT /catalog``.

``--quick`` runs every section at small sizes (a smoke test of the benchmark itself).
Everything the run starts (subprocesses, temporary folders, its Kafka topics) is removed at the
end, also after an error or Ctrl-C; the local broker itself (``scripts/services.py``) is left up.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench import deadlines, kafka, lifecycle, live, replay, state_size, throughput, timers_live
from bench.common import Results, median, progress
from rules.catalog import Catalog, load_default_catalog
from state.codec import encode_state


@dataclass(frozen=True, slots=True)
class Sizes:
    events: int  # replay input
    customers: int
    replay_budget: float  # seconds, 0: none
    engine_sample: int  # events timed one by one
    live_events: int
    live_budget: float  # seconds of processing per live process, 0: none
    raw_messages: int
    repeats: int
    partitions: int
    index_customers: int  # deadline index memory and rebuild
    timer_customers: int  # customers with deadlines firing live
    throughput: throughput.Sizes | None  # None: the section is skipped


def sizes(args: argparse.Namespace) -> Sizes:
    if args.quick:
        return Sizes(events=min(args.events, 20_000), customers=args.customers, replay_budget=60,
                     engine_sample=2_000, live_events=min(args.live_events, 10_000), live_budget=60,
                     raw_messages=50_000, repeats=1, partitions=args.partitions,
                     index_customers=100_000, timer_customers=5_000,
                     throughput=None if args.no_throughput else throughput.Sizes.quick())
    return Sizes(args.events, args.customers, args.replay_budget, args.engine_sample, args.live_events,
                 args.live_budget, args.raw_messages, args.repeats, args.partitions,
                 args.index_customers, args.timer_customers, None if args.no_throughput else throughput.Sizes())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=replay.FULL_EVENTS, help="replay events (default 1M)")
    parser.add_argument("--customers", type=int, default=replay.DEFAULT_CUSTOMERS,
                        help="customers in the generated input")
    # Time budgets keep the default run near ten minutes: the engine's cost per event grows with
    # the history of the customer (and the generator sends a quarter of all events to one
    # customer), so a full 1M replay or a long live run can take far longer than its share.
    parser.add_argument("--replay-budget", type=float, default=300,
                        help="stop the replay after this many seconds and report what it did (0: never)")
    parser.add_argument("--engine-sample", type=int, default=10_000, help="events timed one by one")
    parser.add_argument("--live-events", type=int, default=200_000, help="events for the worker and plain agent")
    parser.add_argument("--live-budget", type=float, default=150,
                        help="stop measuring a live process after this many seconds of processing (0: never)")
    parser.add_argument("--raw-messages", type=int, default=300_000, help="messages per raw client run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the short benchmarks (medians)")
    parser.add_argument("--partitions", type=int, default=8, help="TAGENGINE_PARTITIONS of the live topics")
    parser.add_argument("--index-customers", type=int, default=1_000_000,
                        help="customers for the deadline index memory and rebuild figures")
    parser.add_argument("--timer-customers", type=int, default=100_000,
                        help="customers whose deadlines fire live while events flow")
    parser.add_argument("--no-throughput", action="store_true",
                        help="skip the throughput section (about 30 min at full size)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a short smoke run of every section")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--offline", action="store_true", help="only the replay and state sections (no broker)")
    only.add_argument("--live-only", action="store_true", help="only the sections on the broker")
    return parser.parse_args(argv)


# -- offline sections --


def bench_replay(results: Results, catalog: Catalog, size: Sizes) -> replay.ReplayRun:
    path = replay.events_file(size.events, size.customers)
    hot, share = replay.hottest_share(replay.read_lines(path, size.events))
    progress(f"replay input {path.name}: {size.events:,} events; busiest customer {hot} has {share:.2%} of them")
    progress(f"replaying (budget {size.replay_budget or 'none'} s)")
    run = replay.time_replay(catalog, path, size.events, size.replay_budget)
    note = f"{run.events:,} events in {run.seconds:.1f} s"
    if run.truncated:
        note = f"TRUNCATED by the time budget: {run.events:,} of {size.events:,} events in {run.seconds:.0f} s"
        if run.interval_rates:
            # A lower bound: the rate keeps falling as the busiest customers' histories grow.
            rest = (size.events - run.events) / run.interval_rates[-1]
            note += f"; the rest would take at least {rest / 60:,.0f} min more"
    if len(run.interval_rates) >= 2:
        note += f"; {run.interval_rates[0]:,.0f}/s in the first 10 s, {run.interval_rates[-1]:,.0f}/s in the last"
    results.add("replay", "replay throughput", run.events / run.seconds, "events/s", note)
    results.add("replay", "replay tag changes", run.changes / run.seconds, "changes/s",
                f"{run.changes:,} changes, {run.errors:,} error lines")
    bench_engine(results, catalog, path, size, run)
    return run


def bench_engine(results: Results, catalog: Catalog, path: Path, size: Sizes, run: replay.ReplayRun) -> None:
    events = replay.parsed_events(replay.read_lines(path, size.engine_sample))
    progress(f"timing process_event over {len(events):,} events x {size.repeats}")
    runs = [replay.time_process_event(catalog, events) for _ in range(size.repeats)]
    results.add("engine", "process_event per call (median)", median([m for m, _ in runs]), "us",
                f"mean {median([mean for _, mean in runs]):,.0f} us, first {len(events):,} events of the input")
    states = list(run.replay.customers.values())[:20_000]
    now = run.replay.now or 0
    progress(f"timing decide_tags over {len(states):,} final states x {size.repeats}")
    runs = [replay.time_decide_tags(catalog, states, now) for _ in range(size.repeats)]
    results.add("engine", "decide_tags per call (median)", median([m for m, _ in runs]), "us",
                f"mean {median([mean for _, mean in runs]):,.0f} us over the replay's final states")


def bench_state(results: Results, catalog: Catalog, run: replay.ReplayRun) -> None:
    progress("encoding final states")
    stats = state_size.size_stats(run.replay.customers.values())
    note = f"{stats.customers:,} customers after replay"
    results.add("state", "state bytes, median", stats.median, "B", note)
    results.add("state", "state bytes, p90", stats.p90, "B")
    results.add("state", "state bytes, p99", stats.p99, "B")
    results.add("state", "state bytes, max", stats.max, "B", f"customer {stats.largest_customer}")
    typical = state_size.typical_customer(catalog)
    results.add("state", "state bytes, typical customer", len(encode_state(typical)), "B",
                f"{len(typical.orders)} orders, {len(typical.tags)} tags, "
                f"{len(typical.recent_event_ids)} remembered event ids")
    heavy = state_size.heavy_customer(catalog)
    results.add("state", "state bytes, heavy customer", len(encode_state(heavy)), "B",
                f"an order a day for a year: {len(heavy.orders)} orders, {len(heavy.tags)} tags")


# -- sections on the broker --


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str  # every topic and app id of this run starts with it
    plain: str
    raw: str


def bench_broker(results: Results, size: Sizes, cleanup: ExitStack) -> None:
    bootstrap = kafka.bootstrap_from_env_or_services()
    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    topics = Topics(prefix, prefix + "plain", prefix + "raw")
    progress(f"broker {bootstrap}, topics {prefix}*, {size.partitions} partitions")
    cleanup.callback(_delete_topics, bootstrap, prefix)
    folder = Path(tempfile.mkdtemp(prefix="tagengine-bench-"))
    cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
    asyncio.run(_prepare(bootstrap, topics, size))
    bench_raw(results, bootstrap, topics, size)
    plain = bench_plain(results, bootstrap, topics, size, folder, cleanup)
    worker = bench_worker(results, bootstrap, topics, size, folder, cleanup)
    consumer = results.get("kafka", "raw consumer getmany (median)")
    if worker and plain:
        results.add("ratio", "worker / plain agent", worker / plain, "x")
    if worker and consumer:
        results.add("ratio", "worker / raw consumer", worker / consumer, "x")
    if size.throughput is not None:
        throughput.run_section(results, bootstrap, size.throughput, cleanup)
    timers_live.run(results, bootstrap, live.clean_env(), size.timer_customers)


async def _prepare(bootstrap: str, topics: Topics, size: Sizes) -> None:
    """Create every topic, then fill the worker's and the plain agent's input."""
    from connectors.generator import demo_events
    from connectors.kafka_admin import ensure_topics

    await ensure_topics(bootstrap, topics.prefix, size.partitions)
    await kafka.create_topics(bootstrap, [topics.plain, topics.raw], size.partitions)
    progress(f"generating {size.live_events:,} live events (event times: now)")
    records = [r for _, r in zip(range(size.live_events), demo_events(size.customers, seed=7), strict=False)]
    seconds = await kafka.produce(bootstrap, ((topics.prefix + r.topic, r.key, r.value) for r in records))
    progress(f"produced the worker's input in {seconds:.1f} s")
    seconds = await kafka.produce(bootstrap, ((topics.plain, r.key, r.value) for r in records))
    progress(f"produced the plain agent's input in {seconds:.1f} s")


def bench_raw(results: Results, bootstrap: str, topics: Topics, size: Sizes) -> None:
    progress(f"raw aiokafka producer: {size.raw_messages:,} messages x {size.repeats}")
    rates = [asyncio.run(kafka.raw_producer_rate(bootstrap, topics.raw, size.raw_messages))
             for _ in range(size.repeats)]
    results.add("kafka", "raw producer, 200 B, linger 5 ms (median)", median(rates), "msgs/s",
                f"runs: {', '.join(f'{r:,.0f}' for r in rates)}")
    progress(f"raw aiokafka consumer: {size.raw_messages:,} messages x {size.repeats}")
    rates = [asyncio.run(kafka.raw_consumer_rate(bootstrap, topics.raw, size.raw_messages, size.partitions))
             for _ in range(size.repeats)]
    results.add("kafka", "raw consumer getmany (median)", median(rates), "msgs/s",
                f"runs: {', '.join(f'{r:,.0f}' for r in rates)}")


def bench_plain(results: Results, bootstrap: str, topics: Topics, size: Sizes, folder: Path,
                cleanup: ExitStack) -> float | None:
    env = {**live.clean_env(), "BENCH_BROKER": bootstrap, "BENCH_TOPIC": topics.plain,
           "BENCH_APP_ID": topics.prefix + "plain-agent", "BENCH_DATADIR": str(folder / "plain-data"),
           "BENCH_PARTITIONS": str(size.partitions)}
    child = live.Child("plain-agent", "bench.plain_agent", [], env, folder)
    child.env["BENCH_WEB_PORT"] = str(child.port)
    cleanup.callback(child.stop)
    progress(f"plain Faust agent (rocksdb table, one write per event): {size.live_events:,} events")
    measured = live.measure(child, "plain_events_in_total", size.live_events, size.live_budget)
    child.stop()
    return _report_live(results, "plain", "plain agent, 1 table write/event", measured)


def bench_worker(results: Results, bootstrap: str, topics: Topics, size: Sizes, folder: Path,
                 cleanup: ExitStack) -> float | None:
    env = live.worker_env(bootstrap, topics.prefix, topics.prefix + "tagengine", size.partitions,
                          folder / "worker-data")
    child = live.worker_child("worker", env, folder)
    cleanup.callback(child.stop)
    progress(f"tagengine worker (rocksdb, REDIS_URL=none): {size.live_events:,} events")
    measured = live.measure(child, "tagengine_events_in_total", size.live_events, size.live_budget)
    changes = live.metric_sum(child.port, "tagengine_tag_changes_total")
    child.stop()
    rate = _report_live(results, "worker", "tagengine worker", measured)
    if changes is not None and measured.seconds:
        results.add("worker", "tagengine worker tag changes", changes / measured.seconds, "changes/s",
                    f"{changes:,.0f} changes in all")
    return rate


def _report_live(results: Results, section: str, name: str, measured: live.Measurement) -> float | None:
    if not measured.events:
        results.add(section, name, float("nan"), "events/s", measured.problem or "nothing processed")
        return None
    note = (f"{measured.events:,} events in {measured.seconds:.1f} s after {measured.startup_seconds:.1f} s "
            f"start-up, {measured.cpu_cores:.2f} CPU cores")
    if not measured.completed:
        note = f"{measured.problem}; {note}"
    results.add(section, name, measured.rate, "events/s", note)
    return measured.rate


def _delete_topics(bootstrap: str, prefix: str) -> None:
    try:
        deleted = asyncio.run(kafka.delete_topics(bootstrap, [prefix]))
        progress(f"deleted {len(deleted)} topics {prefix}*")
    except Exception as exc:  # cleanup must not hide the run's own outcome
        progress(f"could not delete topics {prefix}*: {exc!r}")


# -- main --


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = sizes(args)
    started = time.monotonic()
    results = Results()
    catalog = load_default_catalog()
    print(f"tagengine benchmark ({'quick' if args.quick else 'full'}); catalog {catalog.name} {catalog.version}")
    interrupted = False
    try:
        with ExitStack() as cleanup:
            if not args.live_only:
                run = bench_replay(results, catalog, size)
                bench_state(results, catalog, run)
                del run  # the replay's states are large; the live sections do not need them
                year_customers = 2_000 if args.quick else 20_000
                lifecycle.run(results, catalog, year_customers, 20 * year_customers)
                deadlines.run(results, size.index_customers)
            if not args.offline:
                bench_broker(results, size, cleanup)
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: cleaned up; the summary has what was measured")
    elapsed = time.monotonic() - started
    kind = "quick" if args.quick else "full"
    print(f"\nSummary ({kind} run{', INTERRUPTED' if interrupted else ''}, {elapsed / 60:.1f} min)\n"
          f"{results.table()}")
    return 130 if interrupted else 0

if __name__ == "__main__":
    sys.exit(main())
