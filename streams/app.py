"""The Faust worker: topics, the customer table, the tag agent and the web views.

Data path (one agent, no repartition hop): the four input topics are keyed by ``customer_id`` and
co-partitioned with the ``customers`` table's changelog, so a worker owning partition p owns every
event and the whole state of the customers of p. The agent takes records in batches; the pure
``BatchProcessor`` turns a batch into state writes and outputs; the agent writes each touched
customer once per batch and hands outputs to the producer. Offsets are committed only after the
producer has flushed (Faust's at-least-once), and every effect is idempotent on replay: events are
de-duplicated by the state they already changed, change ids are ``customer_id:seq``.
"""

from __future__ import annotations

import contextvars
import logging
import socket
import time
import weakref
from collections.abc import Sequence
from typing import Any

import faust
from faust.streams import _current_event

from connectors.catalog_feed import follow_catalog, publish_catalog
from connectors.kafka_admin import CATALOG, OUTPUT_TOPICS, TICKS
from connectors.publisher import Publisher
from connectors.redis_projection import RedisProjection, Snapshot
from rules.catalog import Catalog, parse_catalog
from state.events import TOPICS
from state.times import wall_clock
from streams.messages import change_message, dumps, task_message
from streams.metrics import Metrics
from streams.processor import Batch, BatchProcessor, Record
from streams.settings import Settings
from streams.web import add_views

Event = Any  # faust.types.EventT; Faust's generics add nothing here
TABLE = "customers"


log = logging.getLogger(__name__)
STALL_CHECK_SECONDS = 2.5
STALL_SECONDS = 6.0
TICK_RETRY = 5.0
"""Seconds after which a tick that was not seen processed is sent again (it may have been lost
with a revoked partition)."""


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()]


class Engine:
    """One worker's Faust app and everything hung on it."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.metrics = Metrics()
        self.app = faust.App(
            settings.app_id,
            broker=broker_urls(settings.kafka_bootstrap_servers),
            broker_credentials=kafka_credentials(settings),
            store="rocksdb://" if settings.store == "rocksdb" else "memory://",
            datadir=str(settings.datadir),
            topic_partitions=settings.partitions,
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            web_port=settings.web_port,
            canonical_url=settings.advertised_url or f"http://{socket.gethostname()}:{settings.web_port}",
            web_bind=settings.web_host,
            producer_linger=0.005,
            broker_session_timeout=settings.session_timeout,
            broker_heartbeat_interval=min(3.0, settings.session_timeout / 4),
            stream_wait_empty=False,
        )
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.logical = {settings.topic(name): name for name in (*TOPICS, TICKS)}
        self.inputs = self.app.topic(*self.logical, partitions=settings.partitions, **raw)
        self.table = self.app.Table(TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes)
        self.ticks = self.app.topic(settings.topic(TICKS), partitions=settings.partitions, **raw)
        self.processor = BatchProcessor(
            catalog, settings.partitions, self._load, settings.topic_prefix, settings.timer_batch
        )
        self._partition_events: dict[int, Event] = {}
        self._ticks_in_flight: dict[int, float] = {}  # partition -> when its tick was sent
        self._owned: set[int] = set()
        self._fired_since_report = self._reevaluated_since_report = 0
        self._projection_errors_seen = 0
        self._last_report = time.monotonic()
        self.app.agent(self.inputs, name="tagger")(self._agent)
        self.app.timer(settings.timer_interval, name="deadlines")(self._timer)
        self.app.timer(STALL_CHECK_SECONDS, name="stalls")(self._check_stalls)
        self._progress: dict[Any, tuple[int | None, float]] = {}  # input partition -> (read offset, since)
        self.app.on_rebalance_complete.connect(self._on_rebalance_complete)  # type: ignore[arg-type]  # mode types it too narrowly
        self.app.task(self._follow_catalog)
        self.projection = RedisProjection(settings.redis_url) if settings.redis_url else None
        if self.projection is not None:
            self.app.task(self._start_projection)
            self.app.on_before_shutdown.connect(self._stop_projection)  # type: ignore[arg-type]
        add_views(self)

    # -- the agent --

    async def _agent(self, stream: Any) -> None:
        async for events in stream.take_events(self.settings.batch_size, self.settings.batch_seconds):
            await self.handle(events)

    async def handle(self, events: Sequence[Event]) -> Batch:
        """Process one batch. Everything up to the table writes is synchronous on purpose, so no
        other coroutine sees a customer half-updated; then the outputs go to the producer."""
        started = time.perf_counter()
        now = wall_clock()
        records = []
        self._partition_events = {}
        read: dict[str, int] = {}
        for event in events:
            message = event.message
            topic = self.logical[message.topic]
            read[topic] = read.get(topic, 0) + 1
            self._partition_events[message.partition] = event
            records.append(Record(topic, message.partition, message.offset, message.key, message.value))
        for topic, count in read.items():
            self.metrics.events_in.labels(topic).inc(count)
        batch = self.processor.process(records, now)
        for partition, states in batch.states.items():
            with self._on_partition(partition):
                for customer_id, encoded in states.items():
                    self.table[customer_id.encode()] = encoded
        await self._publish(batch, now)
        if self.projection is not None:
            for state in batch.changed:  # seq only moves with a tag change: nothing else to project
                self.projection.offer(Snapshot.of(state))
        self._count(batch, events, started)
        for partition in batch.ticked:
            self._ticks_in_flight.pop(partition, None)
        if batch.ticked:
            self.send_ticks(now)  # catching up: the next slice of overdue deadlines right away
            self._report_progress(now, len(batch.fire_delays), batch.reevaluated)
        return batch

    def _report_progress(self, now: int, fired: int, reevaluated: int) -> None:
        """While work is backed up (overdue deadlines after downtime, a catalog change), log
        progress every 5 s."""
        self._fired_since_report += fired
        self._reevaluated_since_report += reevaluated
        if time.monotonic() - self._last_report < 5:
            return
        overdue = sum(index.due_count(now) for index in self.processor.deadlines.values())
        stale = self.processor.stale_count()
        if overdue or stale or self._fired_since_report > self.settings.timer_batch:
            log.info(
                "in the last %.0f s: fired %d deadlines (%d still overdue), re-evaluated %d customers under "
                "catalog %s (%d to go)",
                time.monotonic() - self._last_report, self._fired_since_report, overdue,
                self._reevaluated_since_report, self.catalog.version, stale,
            )
        self._fired_since_report = self._reevaluated_since_report = 0
        self._last_report = time.monotonic()

    # -- deadlines --

    async def _timer(self) -> None:
        self.send_ticks(wall_clock())

    def send_ticks(self, now: int) -> None:
        """Ask the owner of each partition with due deadlines to fire them (one tick in flight)."""
        pending = 0
        for partition in self._owned:
            index = self.processor.deadlines.get(partition)
            if index is None:
                continue
            pending += len(index)
            earliest = index.earliest()
            due = (earliest is not None and earliest <= now) or self.processor.stale.get(partition)
            sent = self._ticks_in_flight.get(partition)
            if not due or (sent is not None and time.monotonic() - sent < TICK_RETRY):
                continue
            self._ticks_in_flight[partition] = time.monotonic()
            self.ticks.send_soon(key=None, value=b"{}", partition=partition)
        self.metrics.pending_deadlines.set(pending)

    async def _on_rebalance_complete(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        changelog = self.table.changelog_topic.get_topic_name()
        self._owned = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == changelog}
        self._rebuild("partitions assigned")

    def _rebuild(self, why: str) -> None:
        """Re-index the owned partitions' customers from the table: deadlines, and those a
        previous catalog evaluated. Synchronous, so no batch interleaves with the scan."""
        started = time.perf_counter()
        count = self.processor.rebuild(self._owned, self.table.items())
        self._ticks_in_flight.clear()
        now = wall_clock()
        overdue = sum(index.due_count(now) for index in self.processor.deadlines.values())
        stale = self.processor.stale_count()
        self.metrics.customers.set(count)
        log.info(
            "%s: partitions %s, %d customers (%d overdue deadlines, %d to re-evaluate), indexed in %.2f s",
            why, sorted(self._owned), count, overdue, stale, time.perf_counter() - started,
        )
        self.send_ticks(now)

    # -- stalled partitions --

    async def _check_stalls(self) -> None:
        """Resume input partitions that have records waiting but have not advanced for a while.

        Faust sometimes leaves an assigned partition unfetched after a rebalance (faust-streaming
        issues 471 and 629): the worker looks healthy and processes nothing. Seen here in about one
        two-worker start in six, on the worker that owned every partition before the second one
        joined. Resuming or seeking the partitions does not wake them; a new group generation
        usually does (not always at the first attempt), so that is what this asks for.
        """
        consumer = self.app.consumer
        if not self._owned or self.app.rebalancing:
            self._progress.clear()
            return
        inputs = [tp for tp in consumer.assignment() if tp.topic in self.logical]
        if not inputs:
            return
        ends = {tp: consumer.highwater(tp) or 0 for tp in inputs}
        read_offsets = consumer._read_offset  # type: ignore[attr-defined]
        committed = consumer._committed_offset  # type: ignore[attr-defined]
        now = time.monotonic()
        stalled = []
        for tp in inputs:
            position = read_offsets.get(tp)
            if position is None:
                position = committed.get(tp)
            waiting = ends[tp] > (position + 1 if position is not None else 0)
            last, since = self._progress.get(tp, (-1, now))
            if position != last or not waiting:
                self._progress[tp] = (position, now)
            elif now - since >= STALL_SECONDS:
                stalled.append(tp)
                self._progress[tp] = (position, now)
        if stalled:
            log.warning("input partitions %s have records but made no progress for %.0f s: rejoining the group",
                        sorted(f"{tp.topic}[{tp.partition}]" for tp in stalled), STALL_SECONDS)
            self.metrics.stalls.inc(len(stalled))
            # Resuming or seeking the partitions does not wake them; a new group generation does.
            thread = consumer._thread  # type: ignore[attr-defined]
            await thread.call_thread(lambda: thread._ensure_consumer()._coordinator.request_rejoin())

    # -- Redis projection --

    async def _start_projection(self) -> None:
        assert self.projection is not None
        self.projection.start()

    async def _stop_projection(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        assert self.projection is not None
        await self.projection.close()

    # -- catalog changes --

    async def publish_catalog(self, data: bytes) -> None:
        """Hand a validated catalog to every worker (this one included) through the catalog topic."""
        await publish_catalog(
            self.settings.kafka_bootstrap_servers, self.settings.topic(CATALOG), data, **kafka_options(self.settings)
        )

    def update_gauges(self) -> None:
        """Gauges read at scrape time: lag per input partition, pending work."""
        m = self.metrics
        m.stale_customers.set(self.processor.stale_count())
        m.pending_deadlines.set(sum(len(index) for index in self.processor.deadlines.values()))
        if self.projection is not None:
            m.projection_lag.set(self.projection.lag_seconds())
            m.projection_pending.set(self.projection.pending())
            m.projection_errors.inc(max(0, self.projection.errors - self._projection_errors_seen))
            self._projection_errors_seen = self.projection.errors
        m.consumer_lag.clear()  # partitions this worker no longer owns must disappear
        consumer = self.app.consumer
        read_offsets = consumer._read_offset  # type: ignore[attr-defined]  # Faust has no public "position"
        for tp in consumer.assignment():
            if tp.topic not in self.logical:
                continue
            end = consumer.highwater(tp)
            if end is None:
                continue
            read = read_offsets.get(tp)
            behind = end - (read + 1 if read is not None else 0)
            m.consumer_lag.labels(self.logical[tp.topic], str(tp.partition)).set(max(0, behind))

    async def _follow_catalog(self) -> None:
        topic = self.settings.topic(CATALOG)
        bootstrap = self.settings.kafka_bootstrap_servers
        await follow_catalog(bootstrap, topic, self.switch_catalog, **kafka_options(self.settings))

    async def switch_catalog(self, data: bytes) -> None:
        """Use a new catalog from now on; the owned customers are re-evaluated by ticks."""
        catalog = parse_catalog(data, "catalog topic")
        if catalog.version == self.catalog.version:
            return
        log.info("catalog %s (%s) replaces %s", catalog.name, catalog.version, self.catalog.version)
        self.catalog = self.processor.catalog = catalog
        self.metrics.catalog_switches.inc()
        self._rebuild(f"catalog {catalog.version}")

    def _load(self, partition: int, customer_id: str) -> bytes | None:
        with self._on_partition(partition):
            value = self.table.get(customer_id.encode())
        return value if isinstance(value, bytes) else None

    def _on_partition(self, partition: int) -> _CurrentEvent:
        """Make Faust's table write to (and read from) this partition's store and changelog.

        Faust picks the partition of a table write from the event being processed; a batch holds
        events of several partitions, so before touching a customer the agent makes an event of
        that customer's partition the current one.
        """
        return _CurrentEvent(self._partition_events[partition])

    async def _publish(self, batch: Batch, now: int) -> None:
        changes, tasks, dead = (self.settings.topic(name) for name in OUTPUT_TOPICS)
        publisher = Publisher(self.app.producer._producer)  # type: ignore[attr-defined]  # Faust's aiokafka producer
        for change in batch.changes:
            publisher.add(changes, change.customer_id.encode(), dumps(change_message(change, now)))
        for task in batch.tasks:
            publisher.add(tasks, task.customer_id.encode(), dumps(task_message(task)))
        for letter in batch.dead_letters:
            publisher.add(dead, letter.key, dumps(letter.message()))
        for record, customer_id, partition in batch.reroutes:
            publisher.add(self.settings.topic(record.topic), customer_id.encode(), record.value or b"", partition)
        await publisher.flush()

    def _count(self, batch: Batch, events: Sequence[Event], started: float) -> None:
        m = self.metrics
        for topic, count in batch.applied.items():
            m.events_applied.labels(topic).inc(count)
        for letter in batch.dead_letters:
            m.invalid.labels(letter.reason).inc()
        m.duplicates.inc(batch.duplicates)
        m.rerouted.inc(len(batch.reroutes))
        m.count_outputs(batch.changes, batch.tasks)
        m.reevaluated.inc(batch.reevaluated)
        m.batch_seconds.observe(time.perf_counter() - started)
        for delay in batch.fire_delays:
            m.fire_delay.observe(delay / 1_000_000)
        if events:
            oldest = min(e.message.timestamp for e in events)
            m.latency.observe(max(0.0, time.time() - oldest))

class _CurrentEvent:
    """Context manager: Faust's current event set to ``event`` for the duration of a block."""

    def __init__(self, event: Event) -> None:
        self.event = event
        self.token: contextvars.Token[Any] | None = None

    def __enter__(self) -> None:
        self.token = _current_event.set(weakref.ref(self.event))

    def __exit__(self, *exc: object) -> None:
        assert self.token is not None
        _current_event.reset(self.token)


def kafka_credentials(settings: Settings) -> Any:
    """Kafka TLS/SASL from the settings, in Faust's terms (None for plaintext)."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if protocol in ("SSL", "SASL_SSL"):
        import ssl

        ssl_context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile:
            ssl_context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context)


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Kafka TLS/SASL from the settings, in aiokafka's terms, for the engine's own clients."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    credentials = kafka_credentials(settings)
    ssl_context = getattr(credentials, "ssl_context", None)
    if ssl_context is not None:
        options["ssl_context"] = ssl_context
    if protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return options
