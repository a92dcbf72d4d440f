"""Probe: do input partitions stall after a worker dies (takeover) or joins (join)?

Runs ``tagengine worker`` processes of one engine (unique topic prefix and app id, own web ports
and data folders, short session timeout) under a steady stream of events:

- ``--mode cycle`` (default): one engine; a starts, b joins, then per run SIGKILL one worker (a
  *takeover*: the survivor gets its partitions after the session timeout) and start it again (a
  *join* into a group where the other worker owns everything).
- ``--mode fresh``: per run a new engine whose two workers start together (``start``; or b
  ``--join-after`` seconds after a: ``join``), then a is killed ``--kill-after`` s after the start.

For each event it measures, on every live worker, how long until every input partition that worker
owns has advanced again (``resumed after``), and whether an owned partition with records waiting
sat still for ``--stall-after`` seconds while the worker was ready (not rebalancing, table
recovered, its event loop free: time while the loop was busy with a batch, seen as a gap of over
``BUSY_GAP`` between snapshots, is not stillness and is reported as "loop busy"), and why:
``undelivered`` (aiokafka's position is past records Faust never handed on), ``paused``, ``not
fetched``, or ``queued`` (aiokafka holds its next records and a busy worker has not got to them:
reported, not a stall unless the run times out).

The workers run through this script (``_worker``), which adds an instrumentation timer to the
engine: every 0.2 s it writes a JSON line to ``<worker>.<start>.probe.jsonl`` with, for each input
partition, Faust's read and committed offsets, the highwater, membership of Faust's active /
paused / buffered sets, aiokafka's pause flag and position, whether aiokafka's fetcher holds a
fetch result for it (and from which offset) and whether a fetch is in flight to its leader.

    .venv/bin/python scripts/takeover_probe.py --runs 20 --no-watchdog            # 20 takeovers, 21 joins
    .venv/bin/python scripts/takeover_probe.py --mode fresh --rate 10 --runs 10 --no-watchdog --no-patch

``--no-watchdog`` disables the engine's stall watchdog (``streams.stall_watchdog.STALL_SECONDS``) in the
workers, so a stall lasts until ``--timeout``; ``--no-patch`` makes ``streams.faust_patches.apply``
a no-op in the workers, to measure Faust 0.15.3 unpatched. The last line is a summary
(``takeovers: N, stalled: S; joins: ...``); exit status 1 if any stall was seen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

INPUTS = ("orders", "logins", "followups", "customers")


# -- inside a worker process --------------------------------------------------------------------


def _worker_main() -> int:
    """Run ``tagengine worker`` with the probe's instrumentation (and options) installed."""
    import streams.app as app_module
    import streams.stall_watchdog as watchdog_module

    if os.environ.get("PROBE_NO_WATCHDOG") == "1":
        watchdog_module.STALL_SECONDS = 1e9
    if os.environ.get("PROBE_NO_PATCH") == "1":
        with contextlib.suppress(ImportError):
            import streams.faust_patches as patches

            patches.apply = lambda: None
    out = Path(os.environ["PROBE_FILE"])
    if os.environ.get("PROBE_TRACE"):
        _install_trace(Path(os.environ["PROBE_TRACE"]))
    original_init = app_module.Engine.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        handle = out.open("a", buffering=1)

        async def snapshot() -> None:
            with contextlib.suppress(Exception):  # a probe must never take the worker down
                handle.write(json.dumps(_snapshot(self)) + "\n")

        self.app.timer(0.2, name="probe")(snapshot)

    app_module.Engine.__init__ = init  # type: ignore[method-assign]
    from streams.cli import main

    return main(["worker", "--loglevel", "info"])


def _install_trace(path: Path) -> None:  # noqa: C901  # instrumentation, one piece
    """Log, as JSON lines, every change to Faust's active / paused sets, every seek to committed
    offsets, and every fetched record that Faust's ``Consumer.getmany`` did not deliver (and why)."""
    from faust.transport.consumer import Consumer

    handle = path.open("a", buffering=1)

    def trace(what: str, **fields: Any) -> None:
        handle.write(json.dumps({"t": time.time(), "what": what, **fields}, default=str) + "\n")

    def name(tp: Any) -> str:
        return f"{tp.topic.rsplit('-', 1)[-1]}[{tp.partition}]"

    def names(tps: Any) -> list[str]:
        return sorted(name(tp) for tp in tps)

    for method in ("pause_partitions", "resume_partitions", "on_buffer_full", "on_buffer_drop", "_set_active_tps"):
        original = getattr(Consumer, method)

        def wrapper(self: Any, tps: Any, *, _original: Any = original, _method: str = method) -> Any:
            listed = [tps] if _method.startswith("on_buffer") else list(tps)
            result = _original(self, tps)
            trace(_method, tps=names(listed), active=len(self._active_partitions or ()),
                  gen=self.app.consumer_generation_id)
            return result

        setattr(Consumer, method, wrapper)

    original_seek = Consumer.perform_seek

    async def perform_seek(self: Any) -> None:
        before = {name(tp): offset for tp, offset in self._read_offset.items()}
        await original_seek(self)
        after = {name(tp): offset for tp, offset in self._read_offset.items()}
        trace("perform_seek", changed={k: [before.get(k), v] for k, v in after.items() if before.get(k) != v},
              gen=self.app.consumer_generation_id)

    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]

    async def getmany(self: Any, timeout: float) -> Any:
        # faust/transport/consumer.py Consumer.getmany (0.15.3), with the records it drops logged
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            if records:
                spans = {name(tp): [r[0].offset, r[-1].offset] for tp, r in records.items() if r}
                trace("dropped", why="stopping", tps=spans)
            return
        fetched = {name(tp): [r[0].offset, r[-1].offset] for tp, r in records.items() if r}
        delivered: dict[str, list[int]] = {}
        dropped: dict[str, Any] = {}
        records_it = self.scheduler.iterate(records)
        to_message = self._to_message
        if self.flow_active:
            for tp, record in records_it:
                if not self.flow_active:
                    dropped["(flow stopped)"] = True
                    break
                new_generation_id = self.app.consumer_generation_id
                if new_generation_id != generation_id:
                    dropped["(generation changed)"] = [generation_id, new_generation_id]
                    break
                if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                    highwater_mark = self.highwater(tp)
                    self.app.monitor.track_tp_end_offset(tp, highwater_mark)
                    delivered.setdefault(name(tp), []).append(record.offset)
                    yield tp, to_message(tp, record)
                else:
                    dropped.setdefault(name(tp), []).append(record.offset)
        else:
            dropped["(flow not active)"] = True
            try:
                await self.perform_seek()
            except Exception as ex:
                self.log.warning(f"exception performing seek when flow not active {ex}")
        lost = {tp: span for tp, span in fetched.items() if tp not in delivered or delivered[tp][-1] < span[1]}
        if lost:
            trace("dropped", fetched=fetched, lost=lost, reasons=dropped, gen=generation_id,
                  delivered={k: [v[0], v[-1]] for k, v in delivered.items()})

    Consumer.getmany = getmany  # type: ignore[method-assign]


def _snapshot(engine: Any) -> dict[str, Any]:
    app = engine.app
    consumer = app.consumer
    aio = consumer._thread._consumer  # aiokafka.AIOKafkaConsumer (runs in Faust's consumer thread)
    fetcher = aio._fetcher if aio is not None else None
    subscription = aio._subscription.subscription if aio is not None else None
    assignment = subscription.assignment if subscription is not None else None
    active = consumer._active_partitions or set()
    tps = {}
    for tp in sorted(consumer.assignment()):
        if tp.topic not in engine.logical:
            continue
        state: dict[str, Any] = {
            "read": consumer._read_offset.get(tp),
            "committed": consumer._committed_offset.get(tp),
            "hw": consumer.highwater(tp),
            "active": tp in active,
            "faust_paused": tp in consumer._paused_partitions,
            "buffered": tp in consumer._buffered_partitions,
        }
        if assignment is not None and tp in assignment.tps:
            tp_state = assignment.state_value(tp)
            state["ak_paused"] = tp_state.paused
            state["ak_position"] = tp_state._position if tp_state.has_valid_position else None
        if fetcher is not None:
            record = fetcher._records.get(tp)
            if record is None:
                state["ak_records"] = None
            elif type(record).__name__ == "FetchResult":
                partition_records = record._partition_records
                state["ak_records"] = (
                    f"result@{partition_records.next_fetch_offset}" if partition_records is not None
                    else "result(empty)"
                )
            else:
                state["ak_records"] = type(record).__name__
            with contextlib.suppress(Exception):
                node = fetcher._select_read_replica(tp)
                state["inflight"] = node in fetcher._in_flight
        tps[f"{engine.logical[tp.topic]}[{tp.partition}]"] = state
    return {
        "t": time.time(),
        "gen": app.consumer_generation_id,
        "rebalancing": bool(app.rebalancing),
        "recovered": app.tables.recovery.completed.is_set(),
        "in_recovery": bool(app.in_recovery),
        "flow": consumer.flow_active,
        "stalls_metric": engine.metrics.stalls._value.get() if hasattr(engine.metrics.stalls, "_value") else None,
        "tps": tps,
    }


# -- the probe --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Worker:
    def __init__(self, name: str, folder: Path, env: dict[str, str]) -> None:
        self.name = name
        self.folder = folder
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.generation = 0
        self.probe_path = folder / f"{name}.probe.jsonl"  # renamed per start in start()
        self.log_path = folder / f"{name}.log"
        self._probe_offset = 0
        self.last: dict[str, Any] | None = None

    def start(self) -> Worker:
        self.generation += 1
        port = free_port()
        stem = self.folder / f"{self.name}.{self.generation}"
        env = dict(self.env, TAGENGINE_WEB_PORT=str(port), TAGENGINE_ADVERTISED_URL=f"http://127.0.0.1:{port}",
                   PROBE_TRACE=f"{stem}.trace.jsonl" if self.env.get("PROBE_TRACE") else "",
                   PROBE_FILE=f"{stem}.probe.jsonl")
        self.port = port
        self.probe_path = self.folder / f"{self.name}.{self.generation}.probe.jsonl"
        self._probe_offset = 0
        self.last = None
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.generation} at {time.time():.3f} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "_worker"],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def snapshots(self) -> list[dict[str, Any]]:
        """New snapshot lines since the last call."""
        if not self.probe_path.exists():
            return []
        with self.probe_path.open("rb") as handle:
            handle.seek(self._probe_offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self._probe_offset += end
        out = []
        for line in data[:end].splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        if out:
            self.last = out[-1]
        return out

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")


@dataclass
class Watch:
    """Progress of one worker's input partitions after an event (kill or join)."""

    worker: Worker
    after_gen: int  # a resume counts only in a generation newer than this
    log_offset: int
    ready_at: float | None = None  # first snapshot of the current generation that is ready
    gen: int | None = None
    base: dict[str, Any] = field(default_factory=dict)  # tp -> read offset last seen
    moved: dict[str, float] = field(default_factory=dict)  # tp -> when it last advanced / was idle
    resumed_at: float | None = None
    stills: dict[str, dict[str, Any]] = field(default_factory=dict)  # tp -> snapshot when still for stall_after
    stalled: dict[str, dict[str, Any]] = field(default_factory=dict)  # tp -> snapshot of a stall
    longest: float = 0.0
    done: dict[str, bool] = field(default_factory=dict)  # tp -> advanced (or idle) in this generation
    last_t: float | None = None  # time of the previous snapshot
    busy: float = 0.0  # the longest gap between snapshots: the worker's event loop was blocked

    def feed(self, snap: dict[str, Any], stall_after: float) -> None:  # noqa: C901  # one pass, kept together
        ready = (snap["gen"] > self.after_gen and not snap["rebalancing"] and snap["recovered"]
                 and snap["flow"] and bool(snap["tps"]))
        if snap["gen"] != self.gen:  # a new generation: measure again from its start
            self.gen, self.ready_at, self.base, self.moved, self.resumed_at = snap["gen"], None, {}, {}, None
            self.done = {}
        if not ready:
            return
        now = snap["t"]
        if self.ready_at is None:
            self.ready_at = now
        gap = now - self.last_t if self.last_t is not None else 0.0
        self.last_t = now
        if gap > BUSY_GAP:
            # Snapshots come from a timer on the worker's event loop: a long gap means the loop was
            # busy (a batch is processed synchronously), not that a partition was left unfetched.
            # That time is not stillness.
            self.busy = max(self.busy, gap)
            for tp in self.moved:
                self.moved[tp] += gap
        for tp, s in snap["tps"].items():
            if tp.split("[")[0] not in INPUTS:
                continue
            read, hw = s["read"], s["hw"]
            # Faust's read offset is the last offset handed to the streams, its committed offset the
            # next one to read after those processed. Recovery's seek to committed offsets resets the
            # read offset to the committed one even when later records were already handed on, so
            # the position is whichever is further.
            position = max(read + 1 if read is not None else 0, s["committed"] or 0)
            waiting = hw is not None and hw > position
            if tp not in self.base:
                self.base[tp], self.moved[tp], self.done[tp] = read, now, False
            if read != self.base[tp]:  # advanced since the last snapshot
                self.base[tp], self.moved[tp], self.done[tp] = read, now, True
            if not waiting:
                self.moved[tp], self.done[tp] = now, True
            still = now - self.moved[tp]
            self.longest = max(self.longest, still)
            if still >= stall_after and tp not in self.stills:
                self.stills[tp] = dict(s, still=round(still, 1), gen=snap["gen"], why=diagnose(s, position))
            # A queued partition waits for a busy worker (its records are in aiokafka's buffer):
            # not a stall; it counts only if it never resumes (the run times out).
            if tp in self.stills and tp not in self.stalled and self.stills[tp]["why"] != "queued":
                self.stalled[tp] = dict(self.stills[tp], still=round(still, 1))
        if self.resumed_at is None and self.done and all(self.done.values()):
            self.resumed_at = now


BUSY_GAP = 1.0
"""Seconds between two snapshots (taken every 0.2 s) beyond which the worker's loop was busy."""


def diagnose(state: dict[str, Any], position: int) -> str:
    """Why an input partition with records waiting is not advancing, from one snapshot.

    ``paused``: not in Faust's active set (or paused in aiokafka); ``queued``: aiokafka holds
    records from Faust's position (or before it: re-delivery after a seek to the committed offset)
    and Faust has not got to them yet (a busy worker, not a stall); ``undelivered``:
    aiokafka's position is past records Faust never handed to the streams; ``not fetched``: active,
    nothing buffered, aiokafka's position where Faust is, and still no records.
    """
    held = state.get("ak_records") or ""
    ak_position = state.get("ak_position")
    if (not state["active"] and not state["buffered"]) or state.get("ak_paused"):
        return "paused"
    if held.startswith("result@") and int(held.split("@")[1]) <= position:
        return "queued"
    if ak_position is not None and ak_position > position:
        return "undelivered"
    return "not fetched"


async def produce_forever(kafka: str, prefix: str, rate: float, customers: int, counter: list[int]) -> None:
    from aiokafka import AIOKafkaProducer

    from connectors.generator import demo_events

    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=5)
    await producer.start()
    try:
        started = time.monotonic()
        for sent, record in enumerate(demo_events(customers, seed=int(time.time()), broken=0.0)):
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
            await producer.send(prefix + record.topic, record.value, key=record.key)
            counter[0] += 1
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()


async def wait_healthy(worker: Worker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive:
            raise RuntimeError(f"{worker.name} exited; see {worker.log_path}")
        if await asyncio.to_thread(worker.healthy):
            return
        await asyncio.sleep(0.3)
    raise RuntimeError(f"{worker.name} not healthy after {timeout} s; see {worker.log_path}")


async def observe(
    kind: str, run: int, started: float, watches: list[Watch], args: argparse.Namespace
) -> dict[str, Any]:
    """Follow the workers until every watch has resumed and the group has been stable for
    ``--settle`` seconds, or ``--timeout``."""
    deadline = started + args.timeout
    while True:
        await asyncio.sleep(0.2)
        now = time.time()
        for watch in watches:
            for snap in watch.worker.snapshots():
                watch.feed(snap, args.stall_after)
        done = all(
            w.resumed_at is not None and w.worker.last is not None and w.worker.last["gen"] == w.gen
            and now - max(w.resumed_at, w.ready_at or 0) >= args.settle
            for w in watches
        )
        if done or now >= deadline:
            break
    resumed = [w.resumed_at for w in watches if w.resumed_at is not None]
    never = len(resumed) < len(watches)
    result: dict[str, Any] = {
        "kind": kind,
        "run": run,
        "stalled": any(w.stalled for w in watches) or never,
        "seconds": None if never else round(max(resumed) - started, 2),
        "workers": {},
    }
    for watch in watches:
        log = watch.worker.log_since(watch.log_offset)
        result["workers"][watch.worker.name] = {
            "ready_after": round(watch.ready_at - started, 2) if watch.ready_at else None,
            "resumed_after": round(watch.resumed_at - started, 2) if watch.resumed_at else None,
            "gen": watch.gen,
            "longest_still": round(watch.longest, 1),
            "busy": round(watch.busy, 1),
            "watchdog_rejoins": log.count("made no progress"),
            "stalled": watch.stalled,
            "stills": {tp: state["why"] for tp, state in watch.stills.items()},
            "owned": sorted((watch.worker.last or {}).get("tps", {})),
        }
    return result


def report(result: dict[str, Any], verbose: bool) -> None:
    seconds = result["seconds"]
    parts = []
    for name, w in result["workers"].items():
        stills = ", ".join(f"{tp} {why}" for tp, why in w["stills"].items())
        parts.append(f"{name}: ready {w['ready_after']} s, resumed {w['resumed_after']} s, "
                     f"longest still {w['longest_still']} s{' (' + stills + ')' if stills else ''}, "
                     f"{'loop busy ' + str(w['busy']) + ' s, ' if w['busy'] else ''}"
                     f"watchdog rejoins {w['watchdog_rejoins']}")
    print(f"{result['kind']:8} run {result['run']:3}: stalled {'yes' if result['stalled'] else 'no ':3} "
          f"resumed after {seconds if seconds is not None else 'NEVER'} s   ({'; '.join(parts)})", flush=True)
    if result["stalled"] or verbose:
        for name, w in result["workers"].items():
            for tp, state in w["stalled"].items():
                print(f"    {name} {tp}: {json.dumps(state)}", flush=True)


class Probe:
    """One probe invocation: its results and counts, over one or several engines (groups)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.folder = Path(args.folder or tempfile.mkdtemp(prefix="takeover-probe-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.results: list[dict[str, Any]] = []
        self.counts = {kind: [0, 0] for kind in ("start", "takeover", "join")}
        self.produced = [0]

    def engine(self, label: str) -> tuple[str, list[Worker]]:
        """A new engine: unique prefix and app id, two workers a and b (not started)."""
        args = self.args
        prefix = f"stallprobe{uuid.uuid4().hex[:10]}-"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TAGENGINE_", "PROBE_"))}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=args.kafka,
            REDIS_URL=args.redis,
            TAGENGINE_TOPIC_PREFIX=prefix,
            TAGENGINE_APP_ID=prefix.rstrip("-"),
            TAGENGINE_PARTITIONS=str(args.partitions),
            TAGENGINE_STORE="rocksdb",
            TAGENGINE_BATCH_SECONDS="0.02",
            TAGENGINE_SESSION_TIMEOUT=str(args.session_timeout),
            PYTHONUNBUFFERED="1",
        )
        if args.no_watchdog:
            env["PROBE_NO_WATCHDOG"] = "1"
        if args.no_patch:
            env["PROBE_NO_PATCH"] = "1"
        if args.trace:
            env["PROBE_TRACE"] = "1"
        workers = []
        for name in ("a", "b"):
            folder = self.folder / label / name
            folder.mkdir(parents=True, exist_ok=True)
            workers.append(Worker(name, folder, dict(env, TAGENGINE_DATADIR=str(folder / "data"))))
        return prefix, workers

    def record(self, result: dict[str, Any]) -> None:
        self.results.append(result)
        self.counts[result["kind"]][0] += 1
        self.counts[result["kind"]][1] += bool(result["stalled"])
        report(result, self.args.verbose)

    async def join(self, newcomer: Worker, incumbent: Worker, run: int) -> None:
        """Start ``newcomer`` into a group where ``incumbent`` owns every partition."""
        incumbent.snapshots()
        gen = (incumbent.last or {}).get("gen", 0)
        started = time.time()
        watches = [Watch(incumbent, gen, incumbent.log_size())]
        newcomer.start()
        watches.append(Watch(newcomer, 0, newcomer.log_size()))
        self.record(await observe("join", run, started, watches, self.args))

    async def takeover(self, victim: Worker, survivor: Worker, run: int) -> None:
        """SIGKILL ``victim``; the survivor takes its partitions after the session timeout."""
        survivor.snapshots()
        gen = (survivor.last or {}).get("gen", 0)
        started = time.time()
        watch = Watch(survivor, gen, survivor.log_size())
        victim.kill()
        self.record(await observe("takeover", run, started, [watch], self.args))

    async def cycle(self) -> None:
        """One engine: a, then b joins; then per run kill one worker and start it again."""
        args = self.args
        prefix, (first, second) = self.engine("cycle")
        self.describe(prefix)
        async with self.load(prefix):
            try:
                first.start()
                await wait_healthy(first, 120)
                await asyncio.sleep(3)
                await self.join(second, first, 0)
                for run in range(1, args.runs + 1):
                    victim, survivor = (first, second) if run % 2 else (second, first)
                    if not (victim.alive and survivor.alive):
                        print("probe: a worker died on its own; stopping", flush=True)
                        break
                    await self.takeover(victim, survivor, run)
                    await self.join(victim, survivor, run)
            finally:
                for worker in (first, second):
                    worker.stop()

    async def fresh(self) -> None:
        """Per run a new engine under load: a and b started together (or b ``--join-after``
        seconds after a was ready), then a killed ``--kill-after`` seconds after the start."""
        args = self.args
        for run in range(1, args.runs + 1):
            prefix, (first, second) = self.engine(f"run{run}")
            if run == 1:
                self.describe(prefix)
            async with self.load(prefix):
                try:
                    started = time.time()
                    first.start()
                    if args.join_after is None:
                        second.start()
                        self.record(await observe("start", run, started,
                                                  [Watch(first, 0, 0), Watch(second, 0, 0)], self.args))
                    else:
                        await wait_healthy(first, 120)
                        await asyncio.sleep(args.join_after)
                        await self.join(second, first, run)
                    await asyncio.sleep(max(0.0, started + args.kill_after - time.time()))
                    await self.takeover(first, second, run)
                finally:
                    for worker in (first, second):
                        worker.stop()

    def describe(self, prefix: str) -> None:
        args = self.args
        print(f"probe: mode {args.mode}, prefix {prefix}, folder {self.folder}, {args.partitions} partitions, "
              f"{args.rate:.0f} events/s, session timeout {args.session_timeout} s, watchdog "
              f"{'off' if args.no_watchdog else 'on'}, faust patch {'off' if args.no_patch else 'on'}", flush=True)

    @contextlib.asynccontextmanager
    async def load(self, prefix: str) -> Any:
        """A steady stream of events to the engine's input topics while the block runs; its
        topics are created first and deleted afterwards (unless --keep-topics)."""
        from connectors.kafka_admin import ensure_topics

        await ensure_topics(self.args.kafka, prefix, self.args.partitions)
        task = asyncio.create_task(produce_forever(self.args.kafka, prefix, self.args.rate, self.args.customers,
                                                   self.produced))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if not self.args.keep_topics:
                await delete_topics(self.args.kafka, prefix)


async def probe(args: argparse.Namespace) -> int:
    state = Probe(args)
    try:
        await (state.cycle() if args.mode == "cycle" else state.fresh())
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps(state.results, indent=1))
    counts = state.counts
    summary = "; ".join(f"{kind}s: {n}, stalled: {s}" for kind, (n, s) in counts.items() if n)
    print(f"produced {state.produced[0]} events; {summary}", flush=True)
    return 1 if any(s for _, s in counts.values()) else 0


async def delete_topics(kafka: str, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    with contextlib.suppress(Exception):
        await admin.start()
        try:
            names = [name for name in await admin.list_topics() if name.startswith(prefix)]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_worker"]:
        return _worker_main()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("cycle", "fresh"), default="cycle",
                        help="cycle: one engine, per run a takeover and a join; fresh: per run a new engine "
                        "whose two workers start together, then one is killed")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kill-after", type=float, default=10.0,
                        help="fresh mode: kill a worker this many seconds after the start")
    parser.add_argument("--join-after", type=float, default=None,
                        help="fresh mode: start b this many seconds after a is ready (a join) instead of "
                        "together with a")
    parser.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--redis", default="none", help="REDIS_URL for the workers (default: no projection)")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--session-timeout", type=float, default=6.0)
    parser.add_argument("--stall-after", type=float, default=3.0,
                        help="a ready worker's partition with records waiting that does not advance for this "
                        "long is stalled")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds the group must stay stable after resuming")
    parser.add_argument("--timeout", type=float, default=45.0, help="give up on a run after this many seconds")
    parser.add_argument("--no-watchdog", action="store_true", help="disable the engine's stall watchdog")
    parser.add_argument("--no-patch", action="store_true", help="do not apply streams.faust_patches in the workers")
    parser.add_argument("--folder", help="where the workers' logs, probe files and data go (default: a temp dir)")
    parser.add_argument("--json", help="write all results to this file")
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--trace", action="store_true",
                        help="workers log active/paused set changes and seeks to *.trace.jsonl, and (with "
                        "--no-patch) the records Faust's getmany fetched but did not hand on; with the patch, "
                        "the worker log says 'fetched records not passed on' instead")
    args = parser.parse_args(argv)
    return asyncio.run(probe(args))


if __name__ == "__main__":
    sys.exit(main())
