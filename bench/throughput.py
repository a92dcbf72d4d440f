"""Throughput of the tag engine against the baselines, side by side on the same backlogs (issue 7).

Two workloads are generated and produced once, before any system starts, so no system waits on a
producer: *live* (events occurring now, in order, over 100,000 customers) and *backfill* (a
history import: 20,000 customers, ``occurred_at`` spread over the last 200 days, random arrival
order). Both are valid input (``connectors.generator.demo_events`` without its broken records;
refunds never arrive before their order) keyed by ``customer_id`` over 8 partitions.

Systems, each on a copy of the same backlog, events/s from the first processed event to the last
(start-up excluded, ``bench.live.measure``), each bounded by a time budget of processing:

1. raw aiokafka: consume, orjson-decode, produce one output per event (``bench.raw_pipe``);
2. a Faust agent that only takes batches (``take_events(2000, 0.05)``) and decodes (``bench.faust_take``);
3. a plain Faust agent: one table write and one output per event (``bench.plain_agent``);
4. a minimal Quix Streams app: one state write and one output per event (``bench.quix_minimal``);
5. ``tagengine worker``: the full default catalog, RocksDB store, no Redis;
6. two ``tagengine worker`` processes in one group: their summed count, first to last event;
7. the same two without standby copies (``TAGENGINE_STANDBY_REPLICAS=0``): each worker then
   no longer replays the other's changelog.

The baselines (1-4) read one topic holding the whole backlog, produced before they start. Each
run of a worker system gets its own copy of the engine's four input topics (same records, same
order per key), produced once its workers are ready and own every partition between them: the
count starts at the first poll after that production at which every worker has processed an
event, so neither a producer nor a group rebalance falls in the measured time. Runs shorter than
``REPEAT_BELOW`` seconds are repeated and their median is kept. Deadline ticks, the worker's
internal input, are not counted as events.

Then, on fresh topics: the latency event -> tag change (p50, p99) of one worker fed live events
at half its measured live rate, from the send time to the time the broker appended the tag change
(matched by the change's ``event_id``; also until the bench read it), with the worker's CPU use
meanwhile; the resident memory of a worker once it holds N customers (one login each; 1,000,000
by default); and how long a worker started with an empty data folder takes to be ready on those
N customers, restored from the changelog.

Run alone: ``python -m bench.throughput [--quick]``; it is also a section of ``python -m bench``.
``--latency-rate R`` measures only the latency, at R events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import itertools
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from bench import kafka, live
from bench.common import CACHE, Results, median, percentile, progress
from connectors.changelog import changelog_topic
from connectors.generator import GeneratedRecord, demo_events
from connectors.kafka_admin import TICKS, ensure_topics
from state.times import DAY, format_timestamp, wall_clock

WORKER_METRIC = "tagengine_events_in_total"
NOT_EVENTS = f'topic="{TICKS}"'  # the worker's own deadline ticks
REPEAT_BELOW = 30.0  # seconds of processing: shorter runs are repeated (noisy machine)
MAX_REPEATS = 3
LOGS = CACHE / "logs"  # logs of processes that crashed or stalled, kept after the run


@dataclass(frozen=True, slots=True)
class Sizes:
    events: int = 200_000  # per workload
    live_customers: int = 100_000
    backfill_customers: int = 20_000
    backfill_days: int = 200
    budget: float = 100  # seconds of processing per system and workload
    latency_seconds: float = 60
    memory_customers: int = 1_000_000
    memory_budget: float = 900  # about 1,500 logins/s: 1M takes 11 min
    partitions: int = 8

    @classmethod
    def quick(cls) -> Sizes:
        return cls(events=20_000, live_customers=10_000, backfill_customers=2_000, budget=30,
                   latency_seconds=15, memory_customers=50_000, memory_budget=120)


@dataclass(frozen=True, slots=True)
class System:
    key: str  # short, in topic names and app ids
    name: str
    module: str = ""  # baselines: the child's module
    metric: str = ""
    workers: int = 0  # tag engine systems: how many worker processes
    settings: tuple[tuple[str, str], ...] = ()  # tag engine systems: extra worker environment


RAW = System("raw", "raw aiokafka", "bench.raw_pipe", "raw_events_in_total")
TAKE = System("take", "Faust take+decode only", "bench.faust_take", "take_events_in_total")
PLAIN = System("plain", "Faust plain agent", "bench.plain_agent", "plain_events_in_total")
QUIX = System("quix", "Quix Streams minimal", "bench.quix_minimal", "quix_events_in_total")
WORKER = System("w1", "tagengine worker", workers=1)
PAIR = System("w2", "2 tagengine workers", workers=2)
PAIR_NO_STANDBY = System("w2n", "2 workers, no standby", workers=2, settings=(("TAGENGINE_STANDBY_REPLICAS", "0"),))
SYSTEMS = (RAW, TAKE, PLAIN, QUIX, WORKER, PAIR, PAIR_NO_STANDBY)


@dataclass(slots=True)
class Run:
    """One run of the section: where it writes, and what it must remove at the end."""

    bootstrap: str
    size: Sizes
    folder: Path
    cleanup: ExitStack
    prefix: str = field(default_factory=lambda: f"tp{uuid.uuid4().hex[:8]}-")
    remarks: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (workload, system) -> notes

    def workload_prefix(self, workload: str) -> str:
        return f"{self.prefix}{workload}-"

    def backlog_topic(self, workload: str) -> str:
        """The baselines' input: the whole backlog in one topic."""
        return self.workload_prefix(workload) + "all"

    def engine_prefix(self, workload: str, system: System, attempt: int) -> str:
        """TAGENGINE_TOPIC_PREFIX of a worker system's run: its own copy of the four input topics."""
        return f"{self.workload_prefix(workload)}{system.key}-{attempt}-"


# -- workloads --


def live_records(count: int, customers: int, seed: int = 11) -> list[GeneratedRecord]:
    """Events happening now, in order: the demo generator with the wall clock as event time."""
    return list(itertools.islice(demo_events(customers, seed=seed, broken=0), count))


def backfill_records(count: int, customers: int, days: int, seed: int = 13) -> list[GeneratedRecord]:
    """A history import: event times over the last ``days`` days, in random arrival order.

    A refund arriving before its order would be rejected, not applied: such refunds are left out.
    """
    records = list(itertools.islice(demo_events(customers, seed=seed, history=days * DAY, broken=0),
                                    count + count // 10))
    random.Random(seed).shuffle(records)
    return list(itertools.islice(_orders_before_refunds(records), count))


def _orders_before_refunds(records: Iterable[GeneratedRecord]) -> Iterator[GeneratedRecord]:
    orders: set[str] = set()
    for record in records:
        if record.topic == "orders":
            value = orjson.loads(record.value)
            if value["status"] == "refunded" and value["order_id"] not in orders:
                continue
            orders.add(value["order_id"])
        yield record


async def prepare(run: Run, workload: str, records: list[GeneratedRecord]) -> None:
    """Create the baselines' topic and produce the workload's backlog into it (the worker systems
    get theirs once their group has settled: ``feed_workers``)."""
    backlog = run.backlog_topic(workload)
    await kafka.create_topics(run.bootstrap, [backlog], run.size.partitions)
    seconds = await kafka.produce(run.bootstrap, ((backlog, r.key, r.value) for r in records))
    progress(f"{workload}: produced {len(records):,} events into {backlog} in {seconds:.1f} s")


# -- one system on one workload --


def baseline_children(run: Run, workload: str, system: System, attempt: int) -> list[live.Child]:
    name = f"{workload}-{system.key}-{attempt}"
    output = f"{run.workload_prefix(workload)}out-{system.key}"
    asyncio.run(kafka.create_topics(run.bootstrap, [output], run.size.partitions))
    env = {**live.clean_env(), "BENCH_BROKER": run.bootstrap, "BENCH_TOPIC": run.backlog_topic(workload),
           "BENCH_OUTPUT_TOPIC": output, "BENCH_APP_ID": run.prefix + name,
           "BENCH_DATADIR": str(run.folder / name), "BENCH_PARTITIONS": str(run.size.partitions)}
    child = live.Child(name, system.module, [], env, run.folder)
    child.env["BENCH_WEB_PORT"] = str(child.port)
    return [child]


def worker_children(run: Run, workload: str, system: System, attempt: int, prefix: str) -> list[live.Child]:
    """The workers of one run, on their own topics (``prefix``), created here and still empty."""
    asyncio.run(ensure_topics(run.bootstrap, prefix, run.size.partitions))
    app_id = f"{prefix}tagengine"
    children = []
    for n in range(1, system.workers + 1):
        name = f"{workload}-{system.key}-{attempt}-{n}"
        env = live.worker_env(run.bootstrap, prefix, app_id, run.size.partitions, run.folder / name)
        env.update(system.settings)
        children.append(live.worker_child(name, env, run.folder))
    return children


def feed_workers(run: Run, children: list[live.Child], prefix: str, records: list[GeneratedRecord],
                 timeout: float = 180) -> None:
    """Once the group has settled (every worker ready and owning partitions, all of them owned),
    produce the backlog into the workers' topics."""
    deadline = time.monotonic() + timeout
    while not _settled(children, run.size.partitions):
        if time.monotonic() > deadline or not all(child.alive() for child in children):
            raise RuntimeError(f"workers not ready after {timeout:.0f} s:\n{children[0].log_tail()}")
        time.sleep(0.2)
    seconds = asyncio.run(kafka.produce(run.bootstrap, ((prefix + r.topic, r.key, r.value) for r in records)))
    progress(f"produced the backlog into {prefix}<topic> in {seconds:.1f} s, the group settled")


def _settled(children: list[live.Child], partitions: int) -> bool:
    owned: list[int] = []
    for child in children:
        health = live.health(child.port) or {}
        partitions_of = health.get("partitions")
        if health.get("status") != "ok" or not isinstance(partitions_of, list) or not partitions_of:
            return False
        owned += partitions_of
    return sorted(owned) == list(range(partitions))


def measure_once(run: Run, workload: str, system: System, attempt: int,
                 records: list[GeneratedRecord]) -> live.Measurement:
    feed: Callable[[], None] | None = None
    if system.workers:
        prefix = run.engine_prefix(workload, system, attempt)
        children, metric = worker_children(run, workload, system, attempt, prefix), WORKER_METRIC
        feed = functools.partial(feed_workers, run, children, prefix, records)
    else:
        children, metric = baseline_children(run, workload, system, attempt), system.metric
    for child in children:
        run.cleanup.callback(child.stop)
    try:
        measured = live.measure_group(children, metric, run.size.events, run.size.budget, exclude=NOT_EVENTS,
                                      feed=feed)
        if system.workers:
            _remark_workers(run, workload, system, children, attempt)
    finally:
        for child in children:
            child.stop()
    if failed(measured):
        _keep_logs(run, children)
    return measured


def _remark_workers(run: Run, workload: str, system: System, children: list[live.Child], attempt: int) -> None:
    """Events per worker process, and the stall watchdog's rejoins (each one a pause)."""
    shares = [live.metric_sum(c.port, WORKER_METRIC, NOT_EVENTS) or 0 for c in children]
    stalls = sum(live.metric_sum(c.port, "tagengine_partition_stalls_total") or 0 for c in children)
    remark = f"run {attempt}: {stalls:.0f} partition stalls (watchdog rejoins)"
    if len(children) > 1:
        remark += f", events per process {' + '.join(f'{s:,.0f}' for s in shares)}"
    progress(f"{workload}: {system.name}: {remark}")
    run.remarks.setdefault((workload, system.key), []).append(remark)


def failed(measured: live.Measurement) -> bool:
    """A crash, a stall or nothing processed: not a rate (a time budget running out is one)."""
    return not measured.events or not (measured.completed or measured.problem.startswith("TRUNCATED"))


def _keep_logs(run: Run, children: list[live.Child]) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    for child in children:
        if child.log_path.exists():
            kept = LOGS / f"{run.prefix}{child.log_path.name}"
            shutil.copyfile(child.log_path, kept)
            progress(f"log of {child.name} kept in {kept}")


def measure_system(run: Run, workload: str, system: System, records: list[GeneratedRecord]) -> list[live.Measurement]:
    """Up to ``MAX_REPEATS`` runs: a failed run is tried again (and reported), a short one is
    repeated (a median of short runs is steadier on a noisy machine), a long one is enough."""
    runs: list[live.Measurement] = []
    for attempt in range(1, MAX_REPEATS + 1):
        progress(f"{workload}: {system.name}, run {attempt}")
        measured = measure_once(run, workload, system, attempt, records)
        runs.append(measured)
        progress(f"{workload}: {system.name}: {'FAILED: ' if failed(measured) else ''}{_describe(measured)}")
        if not failed(measured) and not (measured.completed and measured.seconds < REPEAT_BELOW):
            break
    return runs


def _describe(measured: live.Measurement) -> str:
    if not measured.events:
        if measured.completed:  # the first poll already saw every event
            return "too fast to time: the whole backlog between two polls"
        return measured.problem or "nothing processed"
    text = (f"{measured.rate:,.0f} events/s: {measured.events:,} events in {measured.seconds:.1f} s after "
            f"{measured.startup_seconds:.1f} s start-up, {measured.cpu_cores:.2f} CPU cores")
    return f"{text} ({measured.problem})" if measured.problem else text


def rate_of(runs: list[live.Measurement]) -> float:
    good = [m.rate for m in runs if not failed(m)]
    return median(good) if good else float("nan")


# -- latency and memory of one worker --


@dataclass(frozen=True, slots=True)
class Latency:
    published: list[float]  # per event that caused a tag change: until the broker appended it, sorted
    seen: list[float]  # the same, until the bench's consumer read it, sorted
    sent: int
    worker_cores: float  # the worker's CPU time over the sending time


async def create_latency_topics(bootstrap: str, prefix: str, partitions: int) -> None:
    """The latency worker's topics; its tag changes stamped with the time the broker appended
    them (``LogAppendTime``), so that the figure does not depend on when the bench's own busy
    process gets round to reading them."""
    changes = prefix + "tag-changes"
    await kafka.create_topics(bootstrap, [changes], partitions, {changes: {"message.timestamp.type": "LogAppendTime"}})
    await ensure_topics(bootstrap, prefix, partitions)


async def latency(run: Run, rate: float) -> Latency:
    """Seconds from sending each live event to its first tag change, appended by the broker and
    read by this process, at ``rate`` events/s for ``latency_seconds``."""
    size = run.size
    prefix = run.workload_prefix("latency")  # its topics were created at the start
    env = live.worker_env(run.bootstrap, prefix, prefix + "tagengine", size.partitions, run.folder / "latency")
    worker = live.worker_child("latency-worker", env, run.folder)
    run.cleanup.callback(worker.stop)
    events = demo_events(size.live_customers, seed=17, broken=0)
    producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap)
    await producer.start()
    try:
        worker.start()
        await _warm_up(worker, producer, prefix, events)
        sent: dict[str, float] = {}
        stop = asyncio.Event()
        collector = asyncio.ensure_future(_collect_changes(run, prefix + "tag-changes", sent, stop))
        cpu, started = worker.cpu_seconds(), time.monotonic()
        await _send_at_rate(producer, prefix, events, rate, size.latency_seconds, sent)
        cores = (worker.cpu_seconds() - cpu) / (time.monotonic() - started)
        await asyncio.sleep(5)  # the last events' changes
        stop.set()
        published, seen = await collector
    finally:
        await producer.stop()
        worker.stop()
    return Latency(sorted(published), sorted(seen), len(sent), cores)


async def _warm_up(worker: live.Child, producer: AIOKafkaProducer, prefix: str,
                   events: Iterator[GeneratedRecord], count: int = 200, timeout: float = 180) -> None:
    """Send ``count`` events and wait until the worker has read them: it has joined and is ready."""
    for record in itertools.islice(events, count):
        await producer.send(prefix + record.topic, record.value, key=record.key)
    await producer.flush()
    deadline = time.monotonic() + timeout
    while (live.metric_sum(worker.port, WORKER_METRIC, NOT_EVENTS) or 0) < count:
        if time.monotonic() > deadline or not worker.alive():
            raise RuntimeError(f"latency worker not consuming after {timeout:.0f} s:\n{worker.log_tail()}")
        await asyncio.sleep(0.2)


async def _send_at_rate(producer: AIOKafkaProducer, prefix: str, events: Iterator[GeneratedRecord],
                        rate: float, seconds: float, sent: dict[str, float]) -> None:
    """Send events at a fixed rate (each generated as it is sent: its event time is now)."""
    progress(f"latency: sending {rate:,.0f} live events/s for {seconds:.0f} s")
    started = time.monotonic()
    count = 0
    while (elapsed := time.monotonic() - started) < seconds:
        while count < elapsed * rate:
            record = next(events)
            sent[orjson.loads(record.value)["event_id"]] = time.time()
            await producer.send(prefix + record.topic, record.value, key=record.key)
            count += 1
        await asyncio.sleep(0.002)
    await producer.flush()


async def _collect_changes(run: Run, topic: str, sent: dict[str, float],
                           stop: asyncio.Event) -> tuple[list[float], list[float]]:
    """Until ``stop``: for each sent event, the delay to the first tag change it caused, until the
    broker appended it and until this process read it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=run.bootstrap, enable_auto_commit=False)
    await consumer.start()
    published: dict[str, float] = {}
    seen: dict[str, float] = {}
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(run.size.partitions)])
        await consumer.seek_to_beginning()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            arrived = time.time()
            for records in batches.values():
                for record in records:
                    event_id = orjson.loads(record.value).get("event_id")
                    if event_id in sent and event_id not in seen:
                        published[event_id] = record.timestamp / 1000 - sent[event_id]
                        seen[event_id] = arrived - sent[event_id]
    finally:
        await consumer.stop()
    return list(published.values()), list(seen.values())


def prepare_memory(run: Run) -> None:
    """One login for each of N new customers, in the memory worker's topics."""
    prefix = run.workload_prefix("memory")
    count = run.size.memory_customers
    now = format_timestamp(wall_clock())
    records = ((f"{prefix}logins", f"m{n:07d}".encode(),
                orjson.dumps({"event_id": f"m{n}", "customer_id": f"m{n:07d}", "occurred_at": now}))
               for n in range(count))
    asyncio.run(ensure_topics(run.bootstrap, prefix, run.size.partitions))
    seconds = asyncio.run(kafka.produce(run.bootstrap, records))
    progress(f"memory: produced {count:,} logins of distinct customers in {seconds:.1f} s")


def memory(run: Run) -> tuple[live.Measurement, float, int | None]:
    """A worker reading ``prepare_memory``'s logins: its run, the customers it read, and its
    resident memory once it held them."""
    size = run.size
    prefix = run.workload_prefix("memory")
    env = live.worker_env(run.bootstrap, prefix, prefix + "tagengine", size.partitions, run.folder / "memory")
    worker = live.worker_child("memory-worker", env, run.folder)
    run.cleanup.callback(worker.stop)
    try:
        measured = live.measure(worker, WORKER_METRIC, size.memory_customers, size.memory_budget,
                                exclude=NOT_EVENTS)
        time.sleep(5)  # outputs and commits of the last batches settle
        held = live.metric_sum(worker.port, WORKER_METRIC, NOT_EVENTS) or 0
        rss = worker.rss_bytes()
    finally:
        worker.stop()
    if failed(measured):
        _keep_logs(run, [worker])
    return measured, held, rss


def restore(run: Run) -> tuple[float, int]:
    """A second worker of the memory worker's group, started with an empty data folder once that
    one stopped: seconds until it is ready (it restores every customer from the changelog), and
    how many changelog records there were to read. NaN if not ready within the memory budget."""
    size = run.size
    prefix = run.workload_prefix("memory")
    app_id = prefix + "tagengine"
    env = live.worker_env(run.bootstrap, prefix, app_id, size.partitions, run.folder / "restore")
    worker = live.worker_child("restore-worker", env, run.folder)
    run.cleanup.callback(worker.stop)
    records = asyncio.run(kafka.end_offsets_total(run.bootstrap, changelog_topic(app_id)))
    progress(f"restore: a worker with an empty data folder reads {records:,} changelog records")
    started = time.monotonic()
    worker.start()
    try:
        while (live.health(worker.port) or {}).get("status") != "ok":
            if time.monotonic() - started > size.memory_budget or not worker.alive():
                _keep_logs(run, [worker])
                return float("nan"), records
            time.sleep(0.1)
        return time.monotonic() - started, records
    finally:
        worker.stop()


# -- the section --


def run_section(results: Results, bootstrap: str, size: Sizes, cleanup: ExitStack,
                systems: tuple[System, ...] = SYSTEMS, extras: bool = True) -> None:
    """Everything above, in order; figures go to ``results`` and a side-by-side table to stdout.
    ``systems``: which systems to measure; ``extras``: also latency and memory."""
    run = _new_run(bootstrap, size, cleanup)
    progress(f"throughput: topics {run.prefix}*, {size.partitions} partitions, "
             f"{size.events:,} events per workload, budget {size.budget:.0f} s per system")
    if extras:
        asyncio.run(create_latency_topics(bootstrap, run.workload_prefix("latency"), size.partitions))
        prepare_memory(run)
    rates: dict[tuple[str, str], float] = {}
    for workload in ("live", "backfill"):
        if workload == "live":
            records = live_records(size.events, size.live_customers)
        else:
            records = backfill_records(size.events, size.backfill_customers, size.backfill_days)
        asyncio.run(prepare(run, workload, records))
        for system in systems:
            runs = measure_system(run, workload, system, records)
            rates[workload, system.key] = rate_of(runs)
            _add_rate(results, run, workload, system, runs)
    _add_ratios(results, rates)
    print(f"\n{side_by_side(rates)}\n", flush=True)
    if not extras:
        return
    worker_rate = rates["live", WORKER.key]
    if worker_rate == worker_rate:  # not NaN
        _add_latency(results, run, worker_rate / 2, "half the worker's live rate")
    _add_memory(results, run)
    _add_restore(results, run)


def latency_section(results: Results, bootstrap: str, size: Sizes, cleanup: ExitStack, rate: float) -> None:
    """Only the latency figure, at a given rate."""
    run = _new_run(bootstrap, size, cleanup)
    asyncio.run(create_latency_topics(bootstrap, run.workload_prefix("latency"), size.partitions))
    _add_latency(results, run, rate, "--latency-rate")


def _new_run(bootstrap: str, size: Sizes, cleanup: ExitStack) -> Run:
    folder = Path(tempfile.mkdtemp(prefix="tagengine-bench-throughput-"))
    cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
    run = Run(bootstrap, size, folder, cleanup)
    cleanup.callback(_delete_topics, bootstrap, run.prefix)
    return run


def _add_rate(results: Results, run: Run, workload: str, system: System, runs: list[live.Measurement]) -> None:
    good = [m for m in runs if not failed(m)]
    note = "; ".join(_describe(m) for m in good)
    if len(good) > 1:
        note = f"median of {len(good)} runs: " + ", ".join(f"{m.rate:,.0f}" for m in good)
    bad = [_describe(m) for m in runs if failed(m)]
    if bad:
        note = f"{len(bad)} FAILED run(s): {'; '.join(bad)}" + (f"; {note}" if note else "")
    note = "; ".join([note, *run.remarks.get((workload, system.key), [])])
    results.add("throughput", f"{workload}: {system.name}", rate_of(runs), "events/s", note)


def _add_ratios(results: Results, given: dict[tuple[str, str], float]) -> None:
    rates = _with_missing(given)
    for workload in ("live", "backfill"):
        worker = rates[workload, WORKER.key]
        for base in (QUIX, RAW):
            results.add("ratio", f"{workload}: worker / {base.name}", worker / rates[workload, base.key], "x")
        results.add("ratio", f"{workload}: 2 workers / 1 worker", rates[workload, PAIR.key] / worker, "x")
        results.add("ratio", f"{workload}: 2 workers, no standby / 1 worker",
                    rates[workload, PAIR_NO_STANDBY.key] / worker, "x")


def _with_missing(rates: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """The rates, with NaN for the systems not measured in this run."""
    nan = float("nan")
    return {(w, s.key): rates.get((w, s.key), nan) for w in ("live", "backfill") for s in SYSTEMS}


def side_by_side(given: dict[tuple[str, str], float]) -> str:
    """Rows: systems; columns: events/s per workload and ratios to Quix minimal and to raw."""
    rates = _with_missing(given)
    head = (f"{'system':<26}{'live ev/s':>11}{'backfill ev/s':>15}{'live/Quix':>11}{'backf./Quix':>13}"
            f"{'live/raw':>10}{'backf./raw':>12}")
    lines = [head, "-" * len(head)]
    for system in SYSTEMS:
        live_rate, back_rate = rates["live", system.key], rates["backfill", system.key]
        lines.append(
            f"{system.name:<26}{live_rate:>11,.0f}{back_rate:>15,.0f}"
            f"{live_rate / rates['live', QUIX.key]:>11.2f}{back_rate / rates['backfill', QUIX.key]:>13.2f}"
            f"{live_rate / rates['live', RAW.key]:>10.3f}{back_rate / rates['backfill', RAW.key]:>12.3f}"
        )
    return "\n".join(lines).replace("nan", "n/a")


def _add_latency(results: Results, run: Run, rate: float, why: str) -> None:
    measured = asyncio.run(latency(run, rate))
    published = measured.published
    note = (f"{rate:,.0f} events/s ({why}) for {run.size.latency_seconds:.0f} s, the worker using "
            f"{measured.worker_cores:.2f} of a core; {len(published):,} of {measured.sent:,} events caused a tag "
            "change; until the broker appended the change")
    results.add("latency", "event -> tag change p50", percentile(published, 0.5) * 1000, "ms", note)
    results.add("latency", "event -> tag change p99", percentile(published, 0.99) * 1000, "ms")
    results.add("latency", "event -> tag change max", (published[-1] if published else float("nan")) * 1000, "ms")
    results.add("latency", "event -> tag change read by the bench, p99", percentile(measured.seen, 0.99) * 1000,
                "ms", "the same changes, until this bench process (also the sender) read them")


def _add_memory(results: Results, run: Run) -> None:
    measured, held, rss = memory(run)
    note = f"{held:,.0f} customers read (one login each); {_describe(measured)}"
    if held < run.size.memory_customers:
        note = f"NOT ALL CUSTOMERS: {note}"
    name = f"worker RSS, {run.size.memory_customers:,} customers"
    results.add("memory", name, rss / 2**20 if rss else float("nan"), "MiB", note)


def _add_restore(results: Results, run: Run) -> None:
    seconds, records = restore(run)
    results.add("memory", f"worker ready on {run.size.memory_customers:,} customers from an empty data folder",
                seconds, "s", f"{records:,} changelog records to read, then the indexes rebuilt; start-up included")


def _delete_topics(bootstrap: str, prefix: str) -> None:
    """This run's topics, Quix's internal ones (named after its consumer group) included."""
    prefixes = [prefix, f"changelog__{prefix}", f"repartition__{prefix}"]
    try:
        deleted = asyncio.run(kafka.delete_topics(bootstrap, prefixes))
        progress(f"deleted {len(deleted)} topics {prefix}*")
    except Exception as exc:  # cleanup must not hide the run's own outcome
        progress(f"could not delete topics {prefix}*: {exc!r}")


def _systems(text: str) -> tuple[System, ...]:
    by_key = {system.key: system for system in SYSTEMS}
    unknown = [key for key in text.split(",") if key not in by_key]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(by_key)}")
    return tuple(system for system in SYSTEMS if system.key in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of the section")
    parser.add_argument("--events", type=int, help="events per workload (default 200,000)")
    parser.add_argument("--budget", type=float, help="seconds of processing per system and workload (default 100)")
    parser.add_argument("--memory-customers", type=int, help="customers for the memory figure (default 1,000,000)")
    parser.add_argument("--systems", type=_systems, default=SYSTEMS, metavar="KEYS",
                        help=f"comma-separated systems to measure, of {','.join(s.key for s in SYSTEMS)} "
                             "(default all; a subset skips latency and memory)")
    parser.add_argument("--latency-rate", type=float, metavar="EVENTS_PER_S",
                        help="measure only the latency event -> tag change, at this rate")
    parser.add_argument("--latency-seconds", type=float, help="how long the latency is measured (default 60)")
    args = parser.parse_args(argv)
    size = Sizes.quick() if args.quick else Sizes()
    overrides = {"events": args.events, "budget": args.budget, "memory_customers": args.memory_customers,
                 "latency_seconds": args.latency_seconds}
    size = dataclasses.replace(size, **{k: v for k, v in overrides.items() if v is not None})
    results = Results()
    started = time.monotonic()
    with ExitStack() as cleanup:
        bootstrap = kafka.bootstrap_from_env_or_services()
        if args.latency_rate:
            latency_section(results, bootstrap, size, cleanup, args.latency_rate)
        else:
            run_section(results, bootstrap, size, cleanup, args.systems, extras=args.systems == SYSTEMS)
    print(f"\nSummary (throughput, {'quick' if args.quick else 'full'}, "
          f"{(time.monotonic() - started) / 60:.1f} min)\n{results.table()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
