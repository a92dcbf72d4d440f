"""How fast can a Faust agent *consume*? Take-and-decode only: no table, no output.

``python -m bench.consume_only`` fills one fresh 8-partition topic with N (default 200,000) JSON
values of about 200 bytes keyed over 20,000 keys, then drains that backlog, each variant in its own
subprocess with its own consumer group, and prints events/s (median of the repeats), the ratio to
the raw aiokafka ceiling, and CPU microseconds per event (whole process, and the event loop's
thread alone), which the machine's other load disturbs far less than events/s:

- ``raw``: an aiokafka consumer (``getmany``) + ``orjson.loads`` per value: the ceiling;
- ``engine``: a Faust agent ``take_events(2000, 0.05)`` + ``orjson.loads`` per value, with the
  tag engine's ``faust.App`` settings (``streams/app.py``);
- ``tuned``: the same with the buffer, fetch, poll and commit settings raised (``TUNED``);
- ``cyopt``: ``cython_optimizations=True``; ``uvloop``: on uvloop (if installed);
- ``noack``: ``stream.noack_take`` on a topic with ``acks=False``: no ack, nothing committed;
- ``direct`` / ``lean``: Faust's fetch loop patched to skip its per-message ``wait_first``
  (a diagnostic, see ``patch_drain_messages``), alone / with everything above;
- ``confluent``: Faust's confluent-kafka transport (``confluent://``), if installed.

The clock starts when the first batch arrives (group join and first fetch are not timed; that
batch is not counted) and stops at the N-th event, or after ``--budget`` seconds (the partial rate
is reported). Variants run interleaved (one round = one run of each), so they share the machine's
noise. Every topic the run creates (Faust's own included) is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import orjson

PARTITIONS = 8
KEYS = 20_000

# The tag engine's faust.App settings (streams/app.py, Settings defaults), minus web and store.
ENGINE: dict[str, Any] = {
    "processing_guarantee": "at_least_once",
    "consumer_auto_offset_reset": "earliest",
    "producer_linger": 0.005,
    "broker_session_timeout": 20.0,
    "broker_heartbeat_interval": 3.0,
    "stream_wait_empty": False,
}

# Settings that bound what one fetch loop iteration hands over (none is a cap here, see the table).
TUNED: dict[str, Any] = {
    "stream_buffer_maxsize": 32_768,  # agent queue (default 4096); fetching pauses at 1/pressure_high_ratio
    "consumer_max_fetch_size": 4 * 1024**2,  # per-partition fetch bytes (default 1 MiB)
    "broker_max_poll_records": 5_000,  # records per getmany (default None: everything buffered)
    "broker_commit_every": 100_000,  # inline commit in the fetch loop every n acks (default 10,000)
    "broker_max_poll_interval": 1000.0,
    "stream_processing_timeout": 300.0,
    "stream_recovery_delay": 0.0,
}
# fetch_max_wait_ms is hard-coded (1500, faust/transport/drivers/aiokafka.py:615) and the fetch
# loop's getmany timeout too (1.0 s, faust/transport/consumer.py:1195); with a backlog neither waits.
WAIT_FIRST_FREE = {"direct_callback": True}  # patch_drain_messages(): a diagnostic, not a setting

# name -> (kind, App settings on top of ENGINE, options)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "raw": ("raw", {}, {}),
    "engine": ("faust", {}, {}),
    "tuned": ("faust", TUNED, {}),
    "cyopt": ("faust", {"cython_optimizations": True}, {}),
    "uvloop": ("faust", {}, {"loop": "uvloop"}),
    "noack": ("faust", {}, {"mode": "noack_take", "topic_acks": False}),
    "confluent": ("faust", {}, {"scheme": "confluent"}),
    "direct": ("faust", {}, WAIT_FIRST_FREE),
    "lean": ("faust", {**TUNED, "cython_optimizations": True},
             {**WAIT_FIRST_FREE, "mode": "noack_take", "topic_acks": False, "loop": "uvloop"}),
    # single knobs and pairs, for --variants
    "direct_uv": ("faust", {}, {**WAIT_FIRST_FREE, "loop": "uvloop"}),
    "direct_noack": ("faust", {}, {**WAIT_FIRST_FREE, "mode": "noack_take", "topic_acks": False}),
    "buf128k": ("faust", {"stream_buffer_maxsize": 131_072}, {}),
    "poll500": ("faust", {"broker_max_poll_records": 500}, {}),
    "fetch8m": ("faust", {"consumer_max_fetch_size": 8 * 1024**2}, {}),
    "commit1m": ("faust", {"broker_commit_every": 1_000_000, "broker_commit_interval": 30.0}, {}),
    "topicnoack": ("faust", {}, {"topic_acks": False}),
    "noacktake": ("faust", {}, {"mode": "noack_take"}),
}
DEFAULT_VARIANTS = "raw,engine,tuned,cyopt,uvloop,noack,direct,lean,confluent"


# -- the children --


def child_raw(spec: dict[str, Any]) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    async def run() -> dict[str, Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=spec["bootstrap"], enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition(spec["topic"], p) for p in range(PARTITIONS)])
            await consumer.seek_to_beginning()
            clock = Clock(spec)
            while not clock.done():
                batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                n = 0
                for records in batches.values():
                    for record in records:
                        orjson.loads(record.value)
                    n += len(records)
                clock.add(n)
            return clock.result()
        finally:
            await consumer.stop()

    return asyncio.run(run())


class Clock:
    """Events/s from the first batch on (that batch not counted), bounded by the budget.

    Called from the event loop's thread, so it also tells where that thread's time went over the
    same window: on a CPU, waiting for one (other processes on the machine), or idle (blocked in
    ``select``, waiting for Kafka or the consumer thread), from ``/proc/thread-self/schedstat``.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.target = int(spec["messages"])
        self.budget = float(spec["budget"])
        self.process_started = time.monotonic()
        self.first: tuple[float, float, int, int] | None = None
        self.last: tuple[float, float, int, int] | None = None
        self.seen = self.first_batch = 0

    @staticmethod
    def snapshot() -> tuple[float, float, int, int]:
        try:
            with open("/proc/thread-self/schedstat") as f:
                on_cpu, runqueue = (int(x) for x in f.read().split()[:2])
        except OSError:
            on_cpu = runqueue = 0
        return time.monotonic(), time.process_time(), on_cpu, runqueue

    def add(self, n: int) -> None:
        if not n:
            return
        self.last = self.snapshot()
        if self.first is None:
            self.first, self.first_batch = self.last, n
        self.seen += n

    def done(self) -> bool:
        now = time.monotonic()
        if self.seen >= self.target:
            return True
        if self.first is None:
            return now - self.process_started > self.budget + 20  # never got going
        return now - self.first[0] > self.budget

    def result(self) -> dict[str, Any]:
        timed = self.seen - self.first_batch
        first, last = self.first, self.last
        if first is None or last is None or last[0] <= first[0] or not timed:
            return {"events": self.seen, "rate": 0.0, "complete": False}
        wall = last[0] - first[0]
        on_cpu, runqueue = (last[2] - first[2]) / 1e9, (last[3] - first[3]) / 1e9
        return {
            "events": self.seen,
            "seconds": round(wall, 3),
            "rate": timed / wall,
            "cpu_us": round((last[1] - first[1]) / timed * 1e6, 1),  # all threads, per event
            "loop_us": round(on_cpu / timed * 1e6, 1),  # the event loop's thread, per event
            "loop_runq": round(runqueue / wall, 3),  # share of the window waiting for a CPU
            "loop_idle": round(max(0.0, 1 - (on_cpu + runqueue) / wall), 3),
            "startup": round(first[0] - self.process_started, 2),
            "complete": self.seen >= self.target,
        }


def child_faust(spec: dict[str, Any]) -> None:
    import faust

    if spec["options"].get("loop"):
        import mode.loop

        mode.loop.use(spec["options"]["loop"])
    settings = {**ENGINE, **spec["settings"]}
    scheme = spec["options"].get("scheme", "kafka")
    take = spec["options"].get("mode", "take_events")
    app = faust.App(
        spec["app_id"],
        broker=f"{scheme}://{spec['bootstrap']}",
        store="memory://",
        topic_partitions=PARTITIONS,
        web_enabled=False,
        **settings,
    )
    topic = app.topic(spec["topic"], partitions=PARTITIONS, key_serializer="raw", value_serializer="raw",
                      acks=spec["options"].get("topic_acks", True))
    clock = Clock(spec)
    result_fd = os.dup(1)

    def finish() -> None:
        # Faust's worker redirects stdout to its logger: write straight to the parent's pipe.
        os.write(result_fd, (json.dumps(clock.result()) + "\n").encode())
        os._exit(0)  # no graceful leave: the group is this process's alone

    def watchdog() -> None:  # a thread: the event loop may never get going (confluent://)
        while not clock.done():
            time.sleep(0.5)
        finish()

    @app.agent(topic)
    async def consume(stream: Any) -> None:
        batches = stream.noack_take(2000, 0.05) if take == "noack_take" else stream.take_events(2000, 0.05)
        async for events in batches:
            for event in events:
                orjson.loads(event.value)
            clock.add(len(events))
            if clock.done():
                finish()

    if spec["options"].get("direct_callback"):
        patch_drain_messages()
    threading.Thread(target=watchdog, daemon=True).start()
    worker = faust.Worker(app, loglevel=os.environ.get("CONSUME_BENCH_LOGLEVEL", "warning"), quiet=True)
    worker.execute_from_commandline()


def patch_drain_messages() -> None:
    """Diagnostic only: Faust's fetch loop without its per-message ``wait_first``.

    ``Consumer._drain_messages`` (faust/transport/consumer.py:1220) awaits
    ``self.wait_first(callback(message), self.suspend_flow.wait())`` for every record: four tasks
    (the callback, ``suspend_flow``, the service's ``stopped`` and ``crashed`` events), an
    ``asyncio.wait`` and three cancellations per record. This copy awaits the callback directly
    while flow is not suspended. It loses the race against ``suspend_flow`` that lets a rebalance
    interrupt a callback blocked on a full stream buffer: not for production.
    """
    from faust.transport import consumer as faust_consumer

    async def _drain_messages(self: Any, fetcher: Any) -> None:
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set
        num_since_yield = 0
        while not (consumer_should_stop() or fetcher_should_stop()):
            ait = getmany(timeout=1.0)
            await self.sleep(0)
            if self.should_stop:
                continue
            async for tp, message in ait:
                num_since_yield += 1
                if num_since_yield > 100:
                    await asyncio.sleep(0)
                    num_since_yield = 0
                offset = message.offset
                r_offset = get_read_offset(tp)
                if r_offset is None or offset >= r_offset:
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if suspended():
                        continue
                    await callback(message)
                    set_read_offset(tp, offset)

    faust_consumer.Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]


# -- the parent --


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.consume_only", "--child", json.dumps(spec)]
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"rate": float("nan"), "error": f"killed after {timeout:.0f} s"}
    for line in reversed(done.stdout.strip().splitlines()):
        if '{"events"' in line:  # Faust's spinner may put terminal codes in front
            result: dict[str, Any] = json.loads(line[line.index('{"events"'):])
            result["wall"] = round(time.monotonic() - started, 1)
            return result
    return {"rate": float("nan"), "error": f"exit {done.returncode}: {done.stderr.strip()[-400:]}"}


def value_for(i: int, rng: random.Random) -> tuple[bytes, bytes]:
    customer = f"c{rng.randrange(KEYS):06d}"
    value = orjson.dumps({
        "event_id": f"e{i:012d}", "customer_id": customer, "type": "order",
        "occurred_at": "2026-01-01T00:00:00.000000+00:00",
        "amount": f"{rng.randrange(1, 100_000) / 100:.2f}", "currency": "EUR",
        "channel": "web", "items": rng.randrange(1, 9), "note": "x" * 40,
    })
    return customer.encode(), value


async def fill(bootstrap: str, topic: str, messages: int) -> float:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    rng = random.Random(7)
    started = time.perf_counter()
    try:
        for i in range(messages):
            key, value = value_for(i, rng)
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        doomed = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


def available(name: str) -> bool:
    """confluent:// needs confluent_kafka and uvloop needs uvloop: neither is a project dependency."""
    options = VARIANTS[name][2]
    module = "confluent_kafka" if options.get("scheme") == "confluent" else options.get("loop")
    if module in ("confluent_kafka", "uvloop"):
        try:
            __import__(module)
        except ImportError:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=12.0, help="seconds of draining per run at most")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--keep", action="store_true", help="keep the topic (for profiling by hand)")
    parser.add_argument("--topic", help="drain this existing topic instead of creating one")
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        if spec["kind"] == "raw":
            print(json.dumps(child_raw(spec)), flush=True)
        else:
            child_faust(spec)
        return

    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}")
    skipped = [n for n in names if not available(n)]
    names = [n for n in names if n not in skipped]
    prefix = f"consume-bench-{uuid.uuid4().hex[:10]}"
    topic = args.topic or f"{prefix}-input"
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    try:
        if not args.topic:
            seconds = asyncio.run(fill(args.bootstrap, topic, args.messages))
            log(f"{args.messages:,} messages in {topic} ({PARTITIONS} partitions) in {seconds:.1f} s")
        for repeat in range(1, args.repeats + 1):
            for name in names:
                if results[name] and not any(r.get("rate", 0) > 0 for r in results[name]):
                    continue  # consumed nothing the first time (confluent://): do not wait again
                kind, settings, options = VARIANTS[name]
                spec = {
                    "kind": kind, "bootstrap": args.bootstrap, "topic": topic, "messages": args.messages,
                    "budget": args.budget, "settings": settings, "options": options,
                    "app_id": f"{prefix}-{name}-{repeat}",
                }
                result = run_child(spec, timeout=args.budget + 60)
                results[name].append(result)
                log(f"round {repeat} {name:<10} {result['rate']:>10,.0f} events/s  {result}")
    finally:
        if not args.keep:
            log(f"deleted topics {asyncio.run(delete_topics(args.bootstrap, prefix))}")
    print_table(names, results, skipped)


def log(message: str) -> None:
    print(f"[consume_only] {message}", file=sys.stderr, flush=True)


def print_table(names: list[str], results: dict[str, list[dict[str, Any]]], skipped: list[str]) -> None:
    def med(name: str, key: str) -> float:
        values = [r[key] for r in results[name] if r.get(key) is not None and r.get("rate", 0) > 0]
        return statistics.median(values) if values else float("nan")

    ceiling = med("raw", "rate") if "raw" in results else float("nan")
    print("\nmedians of the runs; cpu = process CPU us/event (all threads); loop = the event loop's thread:")
    print("on-CPU us/event, share of the window idle (blocked) and waiting for a CPU (other load)")
    print(f"{'variant':<11}{'events/s':>9}{'vs raw':>8}{'cpu us':>8}{'loop us':>8}{'idle':>6}{'runq':>6}"
          f"  {'runs (events/s)':<22} settings")
    for name in names:
        runs = " ".join(f"{r['rate']:,.0f}" if r.get("rate", 0) > 0 else "0" for r in results[name])
        error = next((r["error"] for r in results[name] if "error" in r), "")
        _kind, settings, options = VARIANTS[name]
        shown = ", ".join(f"{k}={v}" for k, v in {**settings, **options}.items()) or "-"
        rate = med(name, "rate")
        print(f"{name:<11}{rate:>9,.0f}{rate / ceiling:>8.3f}{med(name, 'cpu_us'):>8.1f}{med(name, 'loop_us'):>8.1f}"
              f"{med(name, 'loop_idle'):>6.2f}{med(name, 'loop_runq'):>6.2f}  {runs:<22} {shown}"
              + (f"  [{error[-120:]}]" if error and rate != rate else ""))
    for name in skipped:
        print(f"{name:<11} skipped: confluent_kafka or uvloop is not installed")


if __name__ == "__main__":
    main()
