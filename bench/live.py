"""Live throughput: a Faust process on the local broker, fed with input produced beforehand.

The input is in its topics before the process starts, so the process never waits for a producer;
its rate is taken from its own counter (``/metrics``), polled from the first processed event to
the last, which leaves start-up (topic metadata, group join, table recovery) out of the figure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.common import ROOT, progress

POLL_SECONDS = 0.1
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """A benchmark subprocess with its own log file; ``stop()`` is safe to call any number of times.

    It runs in a session of its own, so a Ctrl-C at the terminal reaches only the benchmark, which
    then stops its children in order (SIGTERM, then SIGKILL).
    """

    def __init__(self, name: str, module: str, args: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.log_path = folder / f"{name}.log"
        self.port = free_port()
        self.env = {**env, "PYTHONUNBUFFERED": "1"}
        self.command = [sys.executable, "-m", module, *args]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(self.command, env=self.env, cwd=ROOT, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (Linux /proc)."""
        if not self.alive():
            return float("nan")
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def rss_bytes(self) -> int | None:
        """Resident memory of the process now (Linux /proc), None once it has exited."""
        if not self.alive():
            return None
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None

    def stop(self, grace: float = 30) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def clean_env() -> dict[str, str]:
    """This process's environment without the engine's settings: each child gets its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TAGENGINE_", "BENCH_"))}


def worker_env(bootstrap: str, prefix: str, app_id: str, partitions: int, datadir: Path) -> dict[str, str]:
    """The environment of a ``tagengine worker`` child: RocksDB store, no Redis, its own topics."""
    return {
        **clean_env(),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": "none",
        "TAGENGINE_TOPIC_PREFIX": prefix,
        "TAGENGINE_APP_ID": app_id,
        "TAGENGINE_PARTITIONS": str(partitions),
        "TAGENGINE_STORE": "rocksdb",
        "TAGENGINE_DATADIR": str(datadir),
        "TAGENGINE_WEB_HOST": "127.0.0.1",
    }


def worker_child(name: str, env: dict[str, str], folder: Path) -> Child:
    """A ``tagengine worker`` child with its web server (``/metrics``) on a port of its own."""
    child = Child(name, "streams.cli", ["worker", "--loglevel", "warning"], env, folder)
    child.env["TAGENGINE_WEB_PORT"] = str(child.port)
    return child


def serve_counter(port: int, name: str, read: Callable[[], int]) -> None:
    """Serve ``<name> <read()>`` on ``http://127.0.0.1:<port>/metrics`` from a daemon thread.

    For the children that have no web server of their own (raw client, Quix Streams), so that
    ``measure`` polls every system the same way.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"{name} {read()}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # no access log on stderr
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


def health(port: int) -> dict[str, object] | None:
    """A worker's ``/health`` (ready or not), None if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            body = response.read()
    except urllib.error.HTTPError as not_ready:  # 503 while recovering or rebalancing
        body = not_ready.read()
    except OSError:
        return None
    found: dict[str, object] = json.loads(body)
    return found


def metric_sum(port: int, name: str, exclude: str = "") -> float | None:
    """Sum of all samples of a Prometheus counter (all label sets but those containing
    ``exclude``, if given); None if the page is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    total = 0.0
    for line in text.splitlines():
        if exclude and exclude in line:
            continue
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass(frozen=True, slots=True)
class Measurement:
    events: int  # events counted between the first and the last poll
    seconds: float
    startup_seconds: float  # process start -> first processed event seen
    cpu_cores: float  # CPU seconds of the process per wall second while processing
    completed: bool
    problem: str = ""  # why the measurement ended early: a time budget, a stall, an exit

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


class _Seen:
    """What the polls of a group of processes (one or more) have seen so far: their summed counts."""

    def __init__(self, children: Sequence[Child], expected: int) -> None:
        self.children = children
        self.name = " + ".join(child.name for child in children)
        self.expected = expected
        self.launched = self.last_change = self.last_report = time.monotonic()
        self.first: tuple[float, float, float] | None = None  # (time, count, CPU seconds)
        self.count = 0.0

    def cpu_seconds(self) -> float:
        return sum(child.cpu_seconds() for child in self.children)

    def update(self, now: float, count: float) -> None:
        if self.first is None:
            self.first = (now, count, self.cpu_seconds())
            progress(f"{self.name}: first events after {now - self.launched:.1f} s")
        if count != self.count:
            self.last_change, self.count = now, count
        if self.first is not None and now - self.last_report >= 10:
            self.last_report = now
            rate = (count - self.first[1]) / max(now - self.first[0], 1e-9)
            progress(f"{self.name}: {count:,.0f}/{self.expected:,} events, {rate:,.0f}/s so far")


def _poll(seen: _Seen, metric: str, exclude: str, start_timeout: float, stall_timeout: float) -> str:
    """One poll; returns why to stop early, or ""."""
    now = time.monotonic()
    counts = [metric_sum(child.port, metric, exclude) for child in seen.children]
    for child in seen.children:
        if not child.alive():
            return f"{child.name} exited with {child.process.returncode if child.process else '?'}"
    count = sum(c for c in counts if c)
    # A group's rate counts from the moment every process has processed something: before that
    # the first one to join works alone, and then the group rebalances under it.
    if count and (seen.first is not None or all(counts)):
        seen.update(now, count)
    if seen.first is None and now - seen.launched > start_timeout:
        return f"{seen.name}: nothing processed in {start_timeout:.0f} s"
    if seen.first is not None and now - seen.last_change > stall_timeout:
        return f"{seen.name}: stalled at {seen.count:,.0f} events for {stall_timeout:.0f} s"
    return ""


def measure(child: Child, metric: str, expected: int, budget: float = 0, start_timeout: float = 180,
            stall_timeout: float = 60, exclude: str = "") -> Measurement:
    """Start ``child`` and poll ``metric`` until it reaches ``expected``, stalls, or the child dies.

    With a ``budget`` (seconds of processing, 0: none) the measurement ends after it, counting
    the events processed so far. Samples whose labels contain ``exclude`` are not counted.
    """
    return measure_group([child], metric, expected, budget, start_timeout, stall_timeout, exclude)


def measure_group(children: Sequence[Child], metric: str, expected: int, budget: float = 0,
                  start_timeout: float = 180, stall_timeout: float = 60, exclude: str = "",
                  feed: Callable[[], None] | None = None) -> Measurement:
    """``measure`` for processes sharing one input (a consumer group): all are started together,
    and the rate is their summed count from the first poll at which every one of them had
    processed an event to the last event. With ``feed``, the processes start on empty input and
    ``feed()`` (which waits for the group to settle, then produces the input) runs before the first
    poll: otherwise the first process to join would work alone until the second one joins, and
    then the group would rebalance in the middle of the measurement."""
    seen = _Seen(children, expected)
    for child in children:
        child.start()
    if feed is not None:
        feed()
    problem = ""
    while not problem and seen.count < expected:
        time.sleep(POLL_SECONDS)
        problem = _poll(seen, metric, exclude, start_timeout, stall_timeout)
        if problem:
            for child in children:
                progress(f"{problem}; {child.name} log tail:\n{child.log_tail()}")
        elif budget and seen.first is not None and time.monotonic() - seen.first[0] > budget:
            problem = f"TRUNCATED by the time budget of {budget:.0f} s"
            idle = time.monotonic() - seen.last_change
            if idle > 5:  # not slow but stuck, short of the stall timeout: say so
                problem += f"; no progress in its last {idle:.0f} s, at {seen.count:,.0f} of {expected:,}"
    if seen.first is None:
        return Measurement(0, 0.0, time.monotonic() - seen.launched, float("nan"), False, problem)
    started, first_count, first_cpu = seen.first
    ended = seen.last_change  # the poll that saw the last count
    return Measurement(
        events=int(seen.count - first_count),
        seconds=ended - started,
        startup_seconds=started - seen.launched,
        cpu_cores=(seen.cpu_seconds() - first_cpu) / max(ended - started, 1e-9),
        completed=not problem,
        problem=problem,
    )
