"""The Faust worker: topics, the customer table, the tag agent, and what hangs on them.

Data path (one agent, no repartition hop): the four input topics are keyed by ``customer_id`` and
co-partitioned with the ``customers`` table's changelog, so a worker owning partition p owns every
event and the whole state of the customers of p. Records arrive a whole fetch at a time
(``batch_intake.py``; a Faust agent when that is switched off); the pure ``BatchProcessor`` turns
a batch into new states and outputs; ``BatchCommit`` writes them to Kafka in crash-safe order
(read ``streams/commit.py`` for the guarantee), and only then are the batch's input offsets
committed (``BatchPipeline``, ``pipeline.py``, chains these steps batch after batch). Faust's
per-record acknowledgements are off for the input topics, so Faust never commits an offset of its
own.

The pieces, each in its own module: the fetch loop (``batch_intake.py``), its changelog replay a
fetch at a time (``changelog_replay.py``) and the pinned fix of Faust's consumer
(``faust_patches.py``), the batch pipeline (``pipeline.py``), deadline ticks (``ticks.py``), the
stall watchdog (``stall_watchdog.py``), the table with batch writes and recovery of unconfirmed outputs
(``customer_table.py``), Kafka security options (``kafka_security.py``), web views (``web.py``),
the cockpit's web page (``cockpit.py``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP

from connectors.catalog_feed import follow_catalog, publish_catalog
from connectors.kafka_admin import CATALOG, TICKS
from connectors.publisher import OutRecord, Publisher
from connectors.redis_projection import RedisProjection, Snapshot
from rules.catalog import Catalog, parse_catalog
from state.cache import StateCache
from state.events import TOPICS
from state.times import wall_clock
from streams import batch_intake
from streams.cockpit import add_cockpit
from streams.commit import BatchCommit
from streams.customer_table import CustomerTable
from streams.kafka_security import kafka_credentials, kafka_options
from streams.metrics import Metrics
from streams.pipeline import BatchPipeline, Timing
from streams.processor import Batch, BatchProcessor, Record
from streams.settings import Settings
from streams.stall_watchdog import STALL_CHECK_SECONDS, StallWatchdog
from streams.ticks import Ticker
from streams.web import add_views

TABLE = "customers"

log = logging.getLogger(__name__)


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()]


class Engine:
    """One worker's Faust app, and the agent that runs batches through processor and commit."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.metrics = Metrics()
        batch_intake.apply()  # before any Faust consumer exists: streams/faust_patches.py, batch_intake.py
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
            table_standby_replicas=settings.standby_replicas,
            broker_heartbeat_interval=min(3.0, settings.session_timeout / 4),
            stream_wait_empty=False,
            broker_max_poll_records=settings.batch_size,  # a fetch is a batch (batch_intake)
            # Faust's own pages of the table would show a customer's raw stored state to anyone;
            # the API's /customers/<id> is the way to read one.
            web_tables_enabled=False,
            # Faust would otherwise read unprefixed variables (WEB_PORT, TOPIC_PARTITIONS, ...) and
            # let them override the settings given here: Settings is the one configuration.
            env={},
        )
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.logical = {settings.topic(name): name for name in (*TOPICS, TICKS)}
        # acks=False: Faust neither tracks nor commits these offsets; the pipeline does.
        self.inputs = self.app.topic(*self.logical, partitions=settings.partitions, acks=False, **raw)
        self.table = CustomerTable(
            self.app, name=TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes,
            beacon=self.app.tables.beacon,
        )
        self.app.tables.add(self.table)
        self.processor = BatchProcessor(
            catalog, settings.partitions, self.table.read,
            settings.topic_prefix, settings.timer_batch, StateCache(settings.state_cache),
        )
        self.publisher = Publisher(settings.kafka_bootstrap_servers, **kafka_options(settings))
        commit = BatchCommit(self.publisher, self.table, settings.topic, after_changelog=self._fault_point())
        self.pipeline = BatchPipeline(
            self.processor, self.table, commit, lambda: self.app.consumer, lambda: self._owned, self._committed
        )
        self.ticker = Ticker(self._send_ticks)
        self.watchdog: StallWatchdog | None = None
        self._owned: set[int] = set()
        self._fired_since_report = self._reevaluated_since_report = 0
        self._projection_errors_seen = 0
        self._last_report = time.monotonic()
        # The agent subscribes the input topics; their records reach the pipeline in whole
        # fetches through batch_intake, or through the agent when the intake is switched off.
        self.app.agent(self.inputs, name="tagger")(self._agent)
        if settings.batch_intake:
            batch_intake.register(self.app, self.logical, self._take_fetch)
        self.app.timer(settings.timer_interval, name="deadlines")(self._timer)
        self.app.timer(STALL_CHECK_SECONDS, name="stalls")(self._check_stalls)
        self.app.on_partitions_revoked.connect(self._on_partitions_revoked)  # type: ignore[arg-type]
        self.app.on_rebalance_complete.connect(self._on_rebalance_complete)  # type: ignore[arg-type]  # mode types it too narrowly
        self.app.task(self._follow_catalog)
        self.app.task(self._start_publisher)
        self.app.on_before_shutdown.connect(self._stop_clients)  # type: ignore[arg-type]
        self.projection = (
            RedisProjection(settings.redis_url, prefix=settings.app_id, on_lost=self._resync_projection)
            if settings.redis_url else None
        )
        self._projection_lost = False
        if self.projection is not None:
            self.app.task(self._start_projection)
        add_views(self)
        add_cockpit(self)  # the web page at / (streams/cockpit.py)

    @property
    def owned(self) -> frozenset[int]:
        """The partitions of the customers table this worker owns (its input partitions too)."""
        return frozenset(self._owned)

    # -- the agent --

    async def _agent(self, stream: Any) -> None:
        async for events in stream.take_events(self.settings.batch_size, self.settings.batch_seconds):
            messages = [event.message for event in events]
            oldest = min(m.timestamp for m in messages)  # seconds
            await self.pipeline.handle(self._records(messages), self._next_offsets(messages), oldest)

    async def _take_fetch(self, fetched: list[Any]) -> None:
        """Records of one fetch (aiokafka ConsumerRecords, timestamps in milliseconds)."""
        oldest = min(r.timestamp for r in fetched) / 1000
        await self.pipeline.handle(self._records(fetched), self._next_offsets(fetched), oldest)

    def _records(self, raw: list[Any]) -> list[Record]:
        logical = self.logical
        return [Record(logical[r.topic], r.partition, r.offset, r.key, r.value) for r in raw]

    @staticmethod
    def _next_offsets(raw: list[Any]) -> dict[Any, int]:
        """The offsets to commit once these records are done: the next one of each partition."""
        last: dict[tuple[str, int], int] = {}
        for r in raw:  # a plain tuple per record; a TP only per partition
            last[r.topic, r.partition] = r.offset
        return {TP(topic, partition): offset + 1 for (topic, partition), offset in last.items()}

    async def finish_commits(self) -> None:
        """Until every batch processed so far is committed."""
        await self.pipeline.finish()

    def _committed(self, batch: Batch, now: int, timing: Timing) -> None:
        """What follows a batch's commit: the Redis projection, metrics, deadline catch-up."""
        if self.projection is not None:
            for state in batch.changed:  # seq only moves with a tag change: nothing else to project
                self.projection.offer(Snapshot.of(state))
        self._count(batch, timing)
        self.ticker.handled(batch.ticked)
        if batch.ticked:
            self.ticker.tick(now, self._owned, self.processor.deadlines, self.processor.stale)  # catching up
            self._report_progress(now, len(batch.fire_delays), batch.reevaluated)

    def _fault_point(self) -> Callable[[], None]:
        """For fault tests: exit like a kill -9 after the Nth changelog write, if so configured."""
        remaining = [self.settings.fault_exit_after_changelog]

        def count() -> None:
            if remaining[0] > 0:
                remaining[0] -= 1
                if remaining[0] == 0:
                    log.warning("fault test: exiting after a changelog write, before the outputs")
                    logging.shutdown()
                    os._exit(137)

        return count

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
        self.ticker.tick(wall_clock(), self._owned, self.processor.deadlines, self.processor.stale)
        self.metrics.pending_deadlines.set(sum(len(index) for index in self.processor.deadlines.values()))

    def _send_ticks(self, partitions: list[int]) -> None:
        topic = self.settings.topic(TICKS)
        ticks = [OutRecord(topic, None, b"{}", partition) for partition in partitions]
        self.app.add_future(self.publisher.send_soon(ticks))

    # -- rebalance and catalog changes --

    async def _on_partitions_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        """Let the commits in progress finish before the partitions go: their new owner must find
        the state in the changelog and the offsets committed, or it would redo batches differently."""
        await self.finish_commits()

    async def _on_rebalance_complete(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        changelog = self.table.changelog_topic_name
        self._owned = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == changelog}
        async with self.pipeline.between_batches():
            self._rebuild("partitions assigned")

    def _rebuild(self, why: str) -> None:
        """Re-index the owned partitions' customers from the table: deadlines, and those a
        previous catalog evaluated. Synchronous, so no batch interleaves with the scan; called
        ``between_batches``, so none is half processed either."""
        started = time.perf_counter()
        count = self.processor.rebuild(self._owned, self.table.entries(self._owned))
        self.ticker.reset()
        now = wall_clock()
        overdue = sum(index.due_count(now) for index in self.processor.deadlines.values())
        stale = self.processor.stale_count()
        self.metrics.customers.set(count)
        log.info(
            "%s: partitions %s, %d customers (%d overdue deadlines, %d to re-evaluate), indexed in %.2f s",
            why, sorted(self._owned), count, overdue, stale, time.perf_counter() - started,
        )
        self.ticker.tick(now, self._owned, self.processor.deadlines, self.processor.stale)
        if self._projection_lost and self._owned:
            self._offer_all()

    async def publish_catalog(self, data: bytes) -> None:
        """Hand a validated catalog to every worker (this one included) through the catalog topic."""
        await publish_catalog(
            self.settings.kafka_bootstrap_servers, self.settings.topic(CATALOG), data, **kafka_options(self.settings)
        )

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
        self.metrics.catalog_switches.inc()
        await self.finish_commits()  # the rebuild reads the local store, which commits write
        async with self.pipeline.between_batches():  # a batch sees one catalog from start to end
            self.catalog = self.processor.catalog = catalog
            self._rebuild(f"catalog {catalog.version}")

    # -- stalled partitions --

    async def _check_stalls(self) -> None:
        if self.watchdog is None:
            self.watchdog = StallWatchdog(self.app.consumer, set(self.logical))
        if not self._owned or self.app.rebalancing:
            self.watchdog.forget()
            return
        stalled = self.watchdog.stalled()
        if stalled:
            self.metrics.stalls.inc(len(stalled))
            await self.watchdog.rejoin(stalled)

    # -- clients --

    async def _start_publisher(self) -> None:
        await self.publisher.start()

    def _resync_projection(self) -> None:
        """Redis lost the projection: offer every owned customer again (now, or once partitions
        are assigned)."""
        self._projection_lost = True
        if self._owned:
            self._offer_all()

    def _offer_all(self) -> None:
        assert self.projection is not None
        self._projection_lost = False
        for _, encoded in self.table.customers(self._owned):
            self.projection.offer(Snapshot.decode(encoded))

    async def _start_projection(self) -> None:
        assert self.projection is not None
        self.projection.start()

    async def _stop_clients(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        await self.finish_commits()
        if self.projection is not None:
            await self.projection.close()
        await self.publisher.stop()

    # -- metrics --

    def update_gauges(self) -> None:
        """Gauges read at scrape time: lag per input partition, pending work."""
        m = self.metrics
        m.stale_customers.set(self.processor.stale_count())
        m.customers.set(self.processor.customer_count())
        m.pending_deadlines.set(sum(len(index) for index in self.processor.deadlines.values()))
        if self.projection is not None:
            m.projection_lag.set(self.projection.lag_seconds())
            m.projection_pending.set(self.projection.pending())
            m.projection_errors.inc(max(0, self.projection.errors - self._projection_errors_seen))
            self._projection_errors_seen = self.projection.errors
        m.consumer_lag.clear()  # partitions this worker no longer owns must disappear
        for (topic, partition), behind in self.lag().items():
            m.consumer_lag.labels(topic, str(partition)).set(behind)

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not yet read, per owned input partition (logical topic, partition)."""
        consumer = self.app.consumer
        read_offsets = consumer._read_offset  # type: ignore[attr-defined]  # Faust has no public "position"
        lag = {}
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if tp.topic not in self.logical or end is None:
                continue
            read = read_offsets.get(tp)
            lag[(self.logical[tp.topic], tp.partition)] = max(0, end - (read + 1 if read is not None else 0))
        return lag

    def health(self) -> dict[str, object]:
        """Ready ("ok"), or why not: recovering the table or rebalancing, or an owned input
        partition with records waiting and no progress (stalled); with the lag per partition."""
        recovered = self.app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        stalled = self.watchdog.last_stalled if self.watchdog is not None else []
        status = "recovering" if not recovered or self.app.rebalancing else "stalled" if stalled else "ok"
        return {
            "status": status,
            "catalog_version": self.catalog.version,
            "partitions": sorted(self._owned),
            "stalled": sorted(f"{self.logical.get(tp.topic, tp.topic)}[{tp.partition}]" for tp in stalled),
            "lag": {f"{topic}[{partition}]": behind for (topic, partition), behind in sorted(self.lag().items())},
        }

    def _count(self, batch: Batch, timing: Timing) -> None:
        m = self.metrics
        for topic, count in batch.read.items():
            m.events_in.labels(topic).inc(count)
        for topic, count in batch.applied.items():
            m.events_applied.labels(topic).inc(count)
        for letter in batch.dead_letters:
            m.invalid.labels(letter.reason).inc()
        m.duplicates.inc(batch.duplicates)
        m.rerouted.inc(len(batch.reroutes))
        m.count_outputs(batch.changes, batch.tasks)
        m.reevaluated.inc(batch.reevaluated)
        m.batch_seconds.observe(time.perf_counter() - timing.started)
        for delay in batch.fire_delays:
            m.fire_delay.observe(delay / 1_000_000)
        m.latency.observe(max(0.0, time.time() - timing.oldest))
