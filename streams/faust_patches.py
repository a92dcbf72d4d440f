"""Pinned patches of faust-streaming 0.15.3's consumer: fetched records are never dropped, and
the broker answers a fetch after at most 20 ms or 64 KiB, neither 1.5 s nor one record.

The bug (seen here as "an input partition stays unfetched after a rebalance", faust-streaming
issues 471 and 629; measured with ``scripts/takeover_probe.py``)
-----------------------------------------------------------------------------------------------
Faust fetches through aiokafka in its consumer thread and hands aiokafka its *live* set of active
partitions (``faust/transport/consumer.py:795`` and ``:802``, ``Consumer._wait_next_records``):

1. ``fetched_records`` (``aiokafka/consumer/fetcher.py:1209``) waits up to 1 s for data with that
   set while the main thread keeps mutating it. When recovery finishes reading the changelogs it
   pauses them (``faust/tables/recovery.py:475``), and a rebalance pauses everything
   (``faust/app/base.py:1814`` and ``:1886``): the set becomes *empty*, and aiokafka reads an empty
   set as "no filter" (``if partitions and tp not in partitions``, ``fetcher.py:1221``), so it
   drains every assigned partition and moves each one's fetch position past what it returned
   (``FetchResult.getall`` -> ``_update_position``, ``fetcher.py:108-110``).
2. ``Consumer.getmany`` (``faust/transport/consumer.py:693``) then hands on only the records of
   partitions that are (still) in the active set (``:758-763``), and stops at the first record
   after a flow stop or a generation change (``:748-757``). Everything else is discarded *after*
   aiokafka's position moved past it.
3. Nothing rewinds. The seek to committed offsets when recovery completes
   (``faust/tables/recovery.py:655``, ``Consumer.perform_seek``) does nothing for a partition
   without a committed offset: ``AIOKafkaConsumer.seek_to_committed`` seeks only
   ``if offset and offset > 0`` (``aiokafka/consumer/consumer.py:901``).

So a partition whose first records arrived during that window (a new group, a partition that never
had a commit, a worker joining under load) loses them: Faust's read offset stays behind the
highwater while aiokafka, whose position is already at the highwater, holds nothing for it and
fetches only newer records. It looks unfetched, and is woken only by a new group generation
(whose fresh assignment restarts the position from the committed offset, or the earliest) - which
is why ``Engine._check_stalls`` forcing a rejoin "usually" helped and seeking did not. With a
committed offset the seek at the end of recovery repairs it; otherwise, under steady load, the
next records arrive, Faust records a gap and commits past the lost ones.

The patch
---------
- ``Consumer._wait_next_records``: hand aiokafka the live active set wrapped so that it is never
  falsy (``ActivePartitions``): aiokafka still sees pauses and resumes while it waits, as Faust
  intends, but an empty set now means "no partition" instead of "every partition".
- ``AIOKafkaConsumerThread._fetch_records``: after draining, note (in the consumer thread) the
  assignment object and each drained partition's new position.
- ``Consumer.getmany``: the same as 0.15.3, except that when records that aiokafka handed over are
  not passed on (partition paused meanwhile, flow stopped, generation changed), once a partition
  skips a record it skips the rest of its batch (no holes), and afterwards the fetch position of
  each such partition is moved back to its first record not passed on - in the consumer thread,
  only if the assignment is the same object and nobody moved the position since the drain (a
  seek, a reset or a rebalance take precedence).

``apply()`` is idempotent and refuses any faust-streaming other than 0.15.3: on an upgrade,
re-check the bug (``scripts/takeover_probe.py --mode fresh --rate 10 --no-watchdog --no-patch``)
and the line numbers above before pinning the new version here.

The fetch wait
--------------
aiokafka keeps one fetch in flight per broker, and leaves out of it every partition whose fetched
records the consumer has not taken yet (``Fetcher._get_actions_per_node``,
``aiokafka/consumer/fetcher.py:601-611``). When a batch takes a while, every input partition is
in that state, so the fetch asks only for partitions with nothing new (the ticks, the paused
changelogs), and the broker holds it for the fetch's maximum wait before answering empty; the
input records that arrive meanwhile wait behind it. Faust fixes that wait at 1,500 ms
(``faust/transport/drivers/aiokafka.py:615``), and a worker that once fell behind settles into
fetching every 1.5 s: measured at 4,000 live events/s, event -> tag change p99 2.7 s, and 0.4 s
with a 100 ms wait. ``_create_worker_consumer`` sets ``FETCH_MAX_WAIT_MS`` instead.

With that wait alone, a worker at a steady few thousand events/s still spun: the broker answers a
fetch as soon as it holds one new byte, so fetches went out back to back (300 a second at 1,000
events/s, each listing and parsing 40 partitions in the consumer thread, each a small batch with
its own commit), and the worker used 0.8 of a core at any rate from 1,000 to 8,000 events/s. The
consumer now also asks for ``FETCH_MIN_BYTES``: the broker gathers records for up to the wait
before it answers, unless that much is already there (a backlog).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import faust
from aiokafka.structs import TopicPartition
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

FAUST_VERSION = "0.15.3"

FETCH_MAX_WAIT_MS = 20
"""How long the broker may hold a fetch that finds less than ``FETCH_MIN_BYTES``, at most: the
most a record waits in the broker for the worker, and how often an idle worker fetches."""

FETCH_MIN_BYTES = 64 * 1024
"""What a fetch asks for before the broker answers early; more than arrives in ``FETCH_MAX_WAIT_MS``
at the rates where latency matters. Measured against a 50 ms wait and 1 byte, in alternating runs:
at 1,000 events/s 0.27 of a core against 0.79 (latency p50 17 ms against 9, p99 34 against 20); at
4,000/s 0.49 against 0.81 (p99 46-51 ms against 35-44); at 7,800/s 0.76-0.83 against 0.85, latency
within the noise of three runs each; an idle worker 5-6.5% of a core against 2.8%."""

log = logging.getLogger(__name__)

_Consumer: Any = faust_consumer.Consumer
_ConsumerThread: Any = faust_aiokafka.AIOKafkaConsumerThread
_original_fetch_records = _ConsumerThread._fetch_records
_original_create_worker_consumer = _ConsumerThread._create_worker_consumer
ORIGINALS: dict[tuple[Any, str], Any] = {
    (_Consumer, "_wait_next_records"): _Consumer._wait_next_records,
    (_Consumer, "getmany"): _Consumer.getmany,
    (_ConsumerThread, "_fetch_records"): _ConsumerThread._fetch_records,
    (_ConsumerThread, "_create_worker_consumer"): _ConsumerThread._create_worker_consumer,
}
"""The replaced methods as faust-streaming 0.15.3 has them (the tests run them to show the bug)."""


def apply() -> None:
    """Install the patches (once). Raises if the installed faust-streaming is not 0.15.3."""
    if faust.__version__ != FAUST_VERSION:
        raise RuntimeError(
            f"streams.faust_patches is written for faust-streaming {FAUST_VERSION}, found "
            f"{faust.__version__}: check whether the bug is still there and re-pin the patch"
        )
    if getattr(_Consumer, "_tagengine_patched", False):
        return
    _Consumer._wait_next_records = _wait_next_records
    _Consumer.getmany = getmany
    _ConsumerThread._fetch_records = _fetch_records
    _ConsumerThread._create_worker_consumer = _create_worker_consumer
    _Consumer._tagengine_patched = True


def applied() -> bool:
    return bool(getattr(_Consumer, "_tagengine_patched", False))


# -- Faust consumer (main thread) ------------------------------------------------------------------


class ActivePartitions:
    """Faust's live set of active partitions as aiokafka's ``fetched_records`` reads it:
    membership follows the live set, but it is never falsy, so that when the set becomes empty
    during a fetch aiokafka drains no partition rather than every one."""

    __slots__ = ("live",)

    def __init__(self, live: set[Any]) -> None:
        self.live = live

    def __contains__(self, tp: object) -> bool:
        return tp in self.live

    def __bool__(self) -> bool:
        return True

    def __iter__(self) -> Iterator[Any]:
        return iter(set(self.live))

    def __repr__(self) -> str:
        return f"ActivePartitions({self.live!r})"


async def _wait_next_records(self: Any, timeout: float) -> tuple[Any, Any]:
    """``faust.transport.consumer.Consumer._wait_next_records`` (0.15.3), handing the fetch
    ``ActivePartitions`` instead of the bare live set."""
    if not self.flow_active:
        await self.wait(self.can_resume_flow)
    try:
        self.not_waiting_next_records.set()
        active_partitions = None if self.app.client_only else self._get_active_partitions()
        records: Any = {}
        if active_partitions is None:
            records = await self._getmany(active_partitions=None, timeout=timeout)
        elif active_partitions:
            records = await self._getmany(active_partitions=ActivePartitions(active_partitions), timeout=timeout)
        else:
            await self.sleep(1)  # as 0.15.3: nothing active, release the loop
        return records, active_partitions
    finally:
        self.not_waiting_next_records.set()


async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    """``faust.transport.consumer.Consumer.getmany`` (0.15.3), rewinding what it does not pass on."""
    records, _ = await self._wait_next_records(timeout)
    generation_id = self.app.consumer_generation_id
    if records is None or self.should_stop:
        return
    thread = getattr(self, "_thread", None)  # the aiokafka consumer thread (ThreadDelegateConsumer)
    drained = getattr(thread, "_tagengine_drained", None)  # (assignment, {tp: position after the drain})
    if thread is not None:
        thread._tagengine_drained = None
    first: dict[Any, int] = {}  # tp -> first offset not passed on
    skipped: set[Any] = set()
    if self.flow_active:
        active = None if self.app.client_only else self._get_active_partitions()  # live, as 0.15.3
        buffered = self._buffered_partitions
        to_message = self._to_message
        for tp, record in self.scheduler.iterate(records):
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if tp not in skipped and (active is None or tp in active or tp in buffered):
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, to_message(tp, record)
                first[tp] = record.offset + 1
            else:
                skipped.add(tp)
    else:
        self.log.dev("getmany called while flow not active. Seek back to committed offsets.")
        try:
            await self.perform_seek()
        except Exception as ex:
            self.log.warning(f"exception performing seek when flow not active {ex}")
    to_rewind = not_passed_on(records, first)
    if to_rewind and drained is not None and thread is not None and not self.should_stop:
        await thread.call_thread(rewind, thread, drained, to_rewind)


def not_passed_on(records: Mapping[Any, list[Any]], first: Mapping[Any, int]) -> dict[Any, int]:
    """Per partition with fetched records not passed on, the offset of the first of them
    (``first``: per partition, the offset after the last record passed on)."""
    offsets = {}
    for tp, fetched in records.items():
        if fetched and first.get(tp, fetched[0].offset) <= fetched[-1].offset:
            offsets[tp] = first.get(tp, fetched[0].offset)
    return offsets


# -- aiokafka consumer thread -------------------------------------------------------------------------


def _create_worker_consumer(self: Any, transport: Any) -> Any:
    """``AIOKafkaConsumerThread._create_worker_consumer`` with ``FETCH_MAX_WAIT_MS`` and
    ``FETCH_MIN_BYTES``: the consumer hands them to its fetcher when it starts."""
    consumer = _original_create_worker_consumer(self, transport)
    consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
    consumer._fetch_min_bytes = FETCH_MIN_BYTES
    return consumer


async def _fetch_records(
    self: Any, consumer: Any, active_partitions: Any, timeout: float | None = None, max_records: int | None = None
) -> Any:
    """``AIOKafkaConsumerThread._fetch_records``, noting where the drain left each partition."""
    records = await _original_fetch_records(self, consumer, active_partitions, timeout, max_records)
    subscription = consumer._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    positions = {}
    if assignment is not None:
        for tp in records:
            if tp in assignment.tps:
                positions[tp] = assignment.state_value(tp)._position
    self._tagengine_drained = (assignment, positions)
    return records


async def rewind(thread: Any, drained: tuple[Any, Mapping[Any, int | None]], offsets: Mapping[Any, int]) -> None:
    """In the consumer thread: move each partition's fetch position back to ``offsets[tp]`` if
    the assignment and the position are still what the drain left."""
    assignment, positions = drained
    consumer = thread._consumer
    if consumer is None or assignment is None or not assignment.active:
        return
    subscription = consumer._subscription.subscription
    if subscription is None or subscription.assignment is not assignment:
        return
    rewound = {}
    for tp, offset in offsets.items():
        if tp not in assignment.tps:
            continue
        state = assignment.state_value(tp)
        if positions.get(tp) is None or state._position != positions[tp]:
            continue  # moved since the drain (a seek, a reset): that wins
        consumer.seek(TopicPartition(tp.topic, tp.partition), offset)
        rewound[f"{tp.topic}[{tp.partition}]"] = [offset, positions[tp]]
    if rewound:
        log.info("fetched records not passed on, fetching them again: %s", rewound)
