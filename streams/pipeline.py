"""A worker's batches on their way from records to committed input offsets, one after the other.

``BatchPipeline.handle`` runs one batch: it first sends again whatever a previous owner of the
partitions may not have delivered, processes the batch, stages its writes so that the next batch
reads them, and chains its commit behind the previous one. The commit of a batch
(``streams/commit.py``: state with its outbox, outputs, confirmation) thus travels to the broker
while the next batch is computed, commits stay in batch order, and ``handle`` returns with at most
one commit still waiting behind the current one.

Processing lets the event loop run every half millisecond (``SLICE``), so that the previous
batch's commit is not held up by the whole of the next batch: its outputs leave as soon as its
states are acknowledged. At 6,500 events/s a batch took 15-45 ms to process, and each of those
milliseconds was added to the latency of the batch before it. Nothing else processes records or
re-indexes the partitions in between (``between_batches``).

Only once a batch is committed are its input offsets committed, for the partitions still assigned
(a revoked partition's next owner reads those records again: duplicates to it), and at most every
``OFFSETS_EVERY`` seconds: by the batch that finds them due, or else by a flush chained behind the
batches when they are (so a quiet stream's last offsets are committed too), and at once by
``finish`` (before partitions are revoked, the catalog changes or the worker stops). Each offset
commit is a round trip through Faust's consumer thread to the broker, which the next batch's
commit would wait for; committing less often only means a worker that crashes reads a little more
again, and what it reads again it recognises as duplicates.

A commit that fails stops the process at once (exit 70): going on would build new changes on
states whose outputs never arrived, and a crash is safe - the restarted worker recovers from the
changelog.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from state.times import wall_clock
from streams.commit import BatchCommit, CommitFailed
from streams.customer_table import CustomerTable
from streams.processor import Batch, BatchProcessor, Record

COMMIT_FAILED_EXIT = 70
OFFSETS_EVERY = 1.0
"""Seconds between two commits of input offsets, at least."""
OFFSETS_TIMEOUT = 10.0
"""Seconds an offset commit may take before it is given up (a few milliseconds normally). aiokafka
retries a commit until the group coordinator answers, which at shutdown with Kafka unreachable was
never: the worker did not exit. Offsets are only a shortcut past records already processed, so
giving up costs nothing but duplicates read again after a restart."""
SLICE = 0.0005
"""Seconds of processing between two turns of the event loop (see ``BatchPipeline._process``).

A commit needs about a dozen turns of the loop: each of its two awaited writes passes from the
producer's sender task to the connection's reader and back through a few callbacks. While the next
batch is processed, each of those turns waits for a slice. With slices of 2 ms, per-batch logs at
7,000 events/s showed commits of 20-35 ms where an idle loop took 6-9 ms. Those longer commits made
longer cycles and larger batches, until the worker fell behind. A turn costs about 2.5 us, so
0.5 ms slices cost 0.5% of processing. Measured against 2 ms in alternating runs: the latency p99
at 7,000 events/s was lower in 4 of 5 pairs (medians 265 against 324 ms); at 6,500 events/s it
was lower in 4 of 6 pairs, with one tie (medians 72 against 78 ms). CPU was the same, and backlog
rates stayed within the noise (two pairs)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Timing:
    """When a batch started (``time.perf_counter``), and the timestamp (s) of its oldest record."""

    oldest: float
    started: float


Committed = Callable[[Batch, int, Timing], None]
"""What to do once a batch is committed: (batch, its engine time "now", its timing)."""


class BatchPipeline:
    def __init__(
        self,
        processor: BatchProcessor,
        table: CustomerTable,
        commit: BatchCommit,
        consumer: Callable[[], Any],
        owned: Callable[[], set[int]],
        committed: Committed,
    ) -> None:
        self.processor = processor
        self.table = table
        self.commit = commit
        self.consumer = consumer  # Faust's consumer, once the app has one
        self.owned = owned  # the partitions this worker owns now
        self.committed = committed
        self._in_flight: asyncio.Future[None] | None = None  # the last batch's processing and commit
        self._offsets: dict[Any, int] = {}  # of batches committed, not committed themselves yet
        self._offsets_due = 0.0  # time.monotonic() from which they are committed
        self._flush: asyncio.TimerHandle | None = None  # commits them once due, if no batch does
        self._processing = asyncio.Lock()

    async def handle(self, records: list[Record], offsets: dict[Any, int], oldest: float) -> None:
        """Process one batch and chain its commit; ``offsets``: the next offset to read of each
        input partition, to commit once the batch is; ``oldest``: its earliest record's timestamp, s.
        Returns once the batch is processed and the commit before it is done."""
        started = time.perf_counter()
        now = wall_clock()
        await self.commit.resend_unconfirmed(self.owned())
        previous = self._in_flight
        processed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # The batch's whole way, processing included, is one task, chained at once: ``finish``
        # waits for it, and cancelling the caller cannot leave states changed in memory uncommitted.
        self._in_flight = asyncio.ensure_future(
            self._in_order(previous, processed, records, offsets, now, Timing(oldest, started))
        )
        await asyncio.shield(processed)
        if previous is not None:
            await asyncio.shield(previous)  # back pressure: one commit in flight behind this one

    def between_batches(self) -> asyncio.Lock:
        """Held while a batch is processed: ``async with`` it to change what processing reads (the
        catalog, the indexes of the owned partitions) between two batches, never in the middle of one."""
        return self._processing

    async def finish(self) -> None:
        """Until every batch handled so far is committed, and its input offsets too."""
        work = self._in_flight
        if work is not None:
            await asyncio.shield(work)
        work = self._flush_offsets()  # the offsets the last batch left for later
        if work is not None:
            await asyncio.shield(work)

    async def _in_order(
        self,
        previous: asyncio.Future[None] | None,
        processed: asyncio.Future[None],
        records: list[Record],
        offsets: dict[Any, int],
        now: int,
        timing: Timing,
    ) -> None:
        try:
            async with self._processing:
                batch = await self._process(records, now)
                self.table.stage(batch.states)  # the next batch reads them before this commit stores them
            processed.set_result(None)
            if previous is not None:
                await previous
            await self.commit.commit(batch, now)
            self._offsets.update(offsets)  # batches commit in order: later offsets are larger
            if time.monotonic() >= self._offsets_due:
                await self._commit_offsets()
            elif self._flush is None:
                delay = self._offsets_due - time.monotonic()
                self._flush = asyncio.get_running_loop().call_later(delay, self._flush_offsets)
        except Exception as failure:
            _stop_worker(failure)
        self.committed(batch, now, timing)

    async def _process(self, records: list[Record], now: int) -> Batch:
        """The batch processed, with the event loop let run every ``SLICE`` seconds: the previous
        batch's commit goes on meanwhile (its acknowledgements read, its outputs sent) instead of
        waiting for the whole of this batch. Nothing else processes records meanwhile (the fetch
        loop waits for ``handle``), nor re-indexes the partitions (``between_batches``)."""
        run = self.processor.start(now)
        clock = time.perf_counter
        due = clock() + SLICE
        for record in records:
            run.add(record)
            if clock() >= due:
                await asyncio.sleep(0)
                due = clock() + SLICE
        return run.finish()

    def _flush_offsets(self) -> asyncio.Future[None] | None:
        """Chain a commit of the offsets waiting behind the batches in flight; returns the chain."""
        self._cancel_flush()
        if self._offsets:
            self._in_flight = asyncio.ensure_future(self._offsets_after(self._in_flight))
        return self._in_flight

    def _cancel_flush(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    async def _offsets_after(self, previous: asyncio.Future[None] | None) -> None:
        try:
            if previous is not None:
                await previous
            if self._offsets:  # a batch in between may have committed them
                await self._commit_offsets()
        except Exception as failure:
            _stop_worker(failure)

    async def _commit_offsets(self) -> None:
        """Only ever called from the chain of batches: one offset commit at a time, in order."""
        self._cancel_flush()  # it was planned for these offsets
        offsets, self._offsets = self._offsets, {}
        self._offsets_due = time.monotonic() + OFFSETS_EVERY
        consumer = self.consumer()
        assigned = consumer.assignment()
        owned = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not owned:
            return
        try:
            committed = await asyncio.wait_for(consumer._commit(owned), OFFSETS_TIMEOUT)  # Faust's commit
        except TimeoutError:
            log.warning("input offsets not committed within %.0f s; given up (a restart reads those records "
                        "again and recognises them as duplicates)", OFFSETS_TIMEOUT)
            return
        if committed:
            consumer._committed_offset.update(owned)  # read by the stall watchdog


def _stop_worker(failure: Exception) -> None:
    log.critical("commit failed (%r); stopping the worker (exit %d)", failure, COMMIT_FAILED_EXIT,
                 exc_info=not isinstance(failure, CommitFailed))
    logging.shutdown()
    os._exit(COMMIT_FAILED_EXIT)
