"""Test harness for integration tests: worker processes, producing and collecting records; and a
customer table on a local RocksDB store, for the table's own tests.

Workers run as real ``tagengine worker`` processes (so they can be killed with SIGKILL), each
with its own topic prefix, consumer group, web port and data folder, so tests never share state.
Waiting is always on a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from streams.customer_table import CustomerTable
from tests.eventually import eventually
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def customer_table_in(folder: Path, buffer_size: int = 1000) -> CustomerTable:
    """A customer table of 2 partitions stored in ``folder``, not started (no broker needed);
    ``buffer_size``: the changelog records its recovery gathers before a store write."""
    app = faust.App("t-table", store="rocksdb://", datadir=str(folder))
    table = CustomerTable(app, name="customers", partitions=2, key_type=bytes, value_type=bytes,
                          beacon=app.tables.beacon, recovery_buffer_size=buffer_size)
    app.tables.add(table)
    return table


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class Worker:
    """A ``tagengine worker`` subprocess."""

    def __init__(self, env: dict[str, str], folder: Path, name: str = "worker") -> None:
        self.env = env
        self.folder = folder
        self.name = name
        self.port = int(env["TAGENGINE_WEB_PORT"])
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / f"{name}.log"

    def start(self) -> Worker:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "info"],
                env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    async def ready(self, timeout: float = 90) -> None:
        """Until /health says the worker has recovered its table and is processing; fails at once,
        with the tail of its log, if the process exits meanwhile."""
        last = "no answer yet"

        async def healthy() -> bool:
            nonlocal last
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, body = await asyncio.to_thread(self.get, "/health")
            except OSError as error:  # not listening yet
                last = repr(error)
                return False
            last = f"{status} {body[:200]!r}"
            return status == 200

        await eventually(healthy, timeout, what=f"{self.name}: GET /health answers 200", interval=0.2,
                         detail=lambda: f"last /health answer: {last}\n{self.log_tail()}")

    async def shows_metrics(self, *lines: bytes) -> bool:
        """Whether /metrics holds every one of these lines (counters move once a batch commits)."""
        _, metrics = await asyncio.to_thread(self.get, "/metrics")
        return all(line in metrics for line in lines)

    def customer(self, customer_id: str) -> dict[str, object] | None:
        status, body = self.get(f"/customers/{customer_id}")
        return orjson.loads(body) if status == 200 else None

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Group:
    """Workers of one engine (same topics and consumer group), each with its own data folder."""

    def __init__(self, kafka: str, folder: Path, **env: str) -> None:
        self.kafka = kafka
        self.prefix = unique_name() + "-"
        self.folder = folder
        self.env = env
        self.workers: list[Worker] = []

    def start(self, name: str) -> Worker:
        worker = Worker(worker_env(self.kafka, self.prefix, self.folder / name, **self.env), self.folder / name, name)
        self.workers.append(worker.start())
        return worker

    async def start_ready(self, *names: str) -> list[Worker]:
        """Start workers together and wait until each has recovered and joined."""
        workers = [self.start(name) for name in names]
        for worker in workers:
            await worker.ready()
        return workers

    def restart(self, worker: Worker, name: str) -> Worker:
        """The same worker (same data folder and settings) started again after it stopped."""
        again = Worker(worker.env, worker.folder, name=name).start()
        self.workers.append(again)
        return again

    def topic(self, name: str) -> str:
        return self.prefix + name

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


class PrivateBroker:
    """A Kafka broker of one test's own (``scripts/services.py``), to kill and start again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.services = _services_script()
        self.entry: dict[str, object] = {}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.entry['port']}"

    def start(self) -> None:
        """Start (blocking: run it in a thread), on a fresh data folder, until it serves."""
        self.entry = self.services.start_kafka(self.folder, None, set())
        self.services.wait_kafka(self.entry)

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled plug of the broker's host would stop it."""
        pid = int(str(self.entry["pid"]))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self.services.reap(pid)

    def start_again(self) -> None:
        """Start it again on the data it had (blocking), until it serves."""
        self.entry = self.services.restart_kafka(self.entry)
        self.services.wait_kafka(self.entry)

    def stop(self) -> None:
        if self.entry:
            pid = int(str(self.entry["pid"]))
            self.services.terminate(pid, self.services.KAFKA_MAIN, "the test's broker")
            self.services.reap(pid)


def _services_script() -> Any:
    """``scripts/services.py`` as a module (``scripts/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("tagengine_services", ROOT / "scripts" / "services.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker_env(kafka: str, prefix: str, folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGENGINE_")}
    port = free_port()
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka,
        REDIS_URL="none",
        TAGENGINE_TOPIC_PREFIX=prefix,
        TAGENGINE_APP_ID=prefix.rstrip("-"),
        TAGENGINE_PARTITIONS="4",
        TAGENGINE_WEB_PORT=str(port),
        TAGENGINE_ADVERTISED_URL=f"http://127.0.0.1:{port}",
        TAGENGINE_STORE="rocksdb",
        TAGENGINE_DATADIR=str(folder / "data"),
        TAGENGINE_BATCH_SECONDS="0.02",
        TAGENGINE_SESSION_TIMEOUT="6",  # a killed worker's partitions move on quickly
    )
    env.update(extra)
    return env


async def produce(
    kafka: str,
    records: Iterable[tuple[str, bytes | None, bytes]],
    partition_of: Callable[[str, bytes | None], int | None] | None = None,
) -> None:
    """Send (topic, key, value) records, in order, and wait until the broker has them all."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=2)
    await producer.start()
    try:
        for topic, key, value in records:
            partition = partition_of(topic, key) if partition_of else None
            await producer.send(topic, value, key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


def assert_same_changes(live: list[dict[str, object]], reference: list[dict[str, object]]) -> None:
    """Same transitions, each once; a change published twice must be the same change."""
    keep = ("change_id", "customer_id", "seq", "dimension", "from", "to", "trigger", "event_id", "effective_at")
    by_id: dict[object, tuple[object, ...]] = {}
    for change in live:
        content = tuple(change[k] for k in keep)
        assert by_id.setdefault(change["change_id"], content) == content, f"two meanings for {change['change_id']}"
    assert sorted(by_id.values()) == sorted(tuple(c[k] for k in keep) for c in reference)


class Collector:
    """Reads a topic from the beginning in the background; tests await conditions on it."""

    def __init__(self, kafka: str, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.messages: list[dict[str, object]] = []
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> Collector:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await self._consumer.start()
        try:
            partitions = await self._wait_for_partitions()
            self._consumer.assign([TopicPartition(self.topic, p) for p in partitions])
            await self._consumer.seek_to_beginning()
        except BaseException:  # no __aexit__ then: stop the consumer here, or it outlives the test
            await self._consumer.stop()
            raise
        self._task = asyncio.create_task(self._run())
        return self

    async def _wait_for_partitions(self) -> set[int]:
        consumer = self._consumer
        assert consumer is not None

        async def partitions() -> set[int] | None:
            found = consumer.partitions_for_topic(self.topic)
            if not found:
                await consumer._client.force_metadata_update()
            return found

        return await eventually(partitions, 30, what=f"topic {self.topic} appeared", interval=0.1)

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                self.messages.extend(orjson.loads(r.value) for r in records)

    async def wait_for(
        self, condition: Callable[[list[dict[str, object]]], bool], timeout: float = 60, what: str = ""
    ) -> list[dict[str, object]]:
        """The messages read so far, once ``condition`` holds of them; fails with the last ones."""
        await eventually(lambda: condition(self.messages), timeout, what=f"{self.topic}: condition {what!r}",
                         detail=lambda: f"got {len(self.messages)}: {self.messages[-5:]}")
        return self.messages

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
