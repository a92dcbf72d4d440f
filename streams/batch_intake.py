"""Records of the engine's input topics go from Faust's fetch loop to the engine a batch at a time.

Faust delivers a record to an agent through per-record machinery: in its fetch loop
(``Consumer._drain_messages``, faust-streaming 0.15.3 ``transport/consumer.py:1170``) every record
becomes a ``ConsumerMessage``, races ``callback(message)`` against the flow-control event with
``wait_first`` (four tasks, ``asyncio.wait``, three cancellations), takes the conductor's lock,
becomes an ``Event``, goes through the topic's queue and the stream's iterator, and is added to
``take_events``'s buffer. Measured on this project's machines (``bench/consume_only.py``): about
180 µs of event-loop CPU per record, a ceiling near 5,000 records/s before the engine does any work,
against 5 µs for aiokafka itself.

This replaces the fetch loop with one that hands the records of the registered input topics, as
aiokafka returned them, to the engine's batch handler (one call per fetch), and the records of
table changelogs (during recovery and standby) to the table's recovery a fetch at a time
(``changelog_replay.py``); every other topic's records (Faust's own) go Faust's way. Group
membership, assignment, pausing, table recovery and the read offsets Faust keeps stay Faust's.
Records fetched but not passed on (flow stopped, a partition paused or a new generation meanwhile)
are fetched again (``streams/faust_patches.py``).

``register(app, topics, handler)`` before the worker starts; ``apply()`` installs the loop (pinned
to faust-streaming 0.15.3 like the other patch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from faust.transport import consumer as faust_consumer

from streams import changelog_replay, faust_patches

Handler = Callable[[list[Any]], Awaitable[None]]  # aiokafka ConsumerRecords, in partition order


@dataclass(frozen=True, slots=True)
class Intake:
    topics: frozenset[str]
    handle: Handler


_INTAKES: dict[int, Intake] = {}  # id(app) -> where its input records go


def register(app: Any, topics: Collection[str], handle: Handler) -> None:
    """Send the records of ``topics`` to ``handle`` in batches instead of to agents."""
    _INTAKES[id(app)] = Intake(frozenset(topics), handle)


def apply() -> None:
    """Install the batch fetch loop (once). Needs faust-streaming 0.15.3."""
    faust_patches.apply()
    if getattr(_Consumer, "_tagengine_batch_intake", False):
        return
    _Consumer._drain_messages = _drain_messages
    _Consumer._tagengine_batch_intake = True


_Consumer: Any = faust_consumer.Consumer
_original_drain_messages = _Consumer._drain_messages


async def _drain_messages(self: Any, fetcher: Any) -> None:
    """``Consumer._drain_messages`` with batches for the registered topics."""
    intake = _INTAKES.get(id(self.app))
    if intake is None:
        await _original_drain_messages(self, fetcher)
        return
    stopped = self._stopped.is_set
    fetcher_stopped = fetcher._stopped.is_set
    try:
        while not (stopped() or fetcher_stopped()):
            await self.sleep(0)
            if not self.should_stop:
                await _fetch_once(self, intake)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise


async def _fetch_once(self: Any, intake: Intake) -> None:
    """One fetch: other topics' records one by one as Faust does, then the batch for the intake."""
    records, _ = await self._wait_next_records(1.0)
    if records is None or self.should_stop:
        return
    thread = getattr(self, "_thread", None)
    drained = getattr(thread, "_tagengine_drained", None)
    if thread is not None:
        thread._tagengine_drained = None
    passed: dict[Any, int] = {}  # tp -> offset after the last record passed on
    if self.flow_active:
        batch = await _pass_on(self, intake, records, passed)
        for tp, after in passed.items():
            self._read_offset[tp] = after - 1
        if batch:
            await intake.handle(batch)
    else:
        # As Faust: fetched while flow stopped, back to committed offsets. Mid-rebalance a
        # partition may already be gone (IllegalStateError): Faust logs that and goes on too.
        try:
            await self.perform_seek()
        except Exception as exc:  # the same net as faust/transport/consumer.py:776
            self.log.warning(f"exception performing seek when flow not active {exc}")
    to_rewind = faust_patches.not_passed_on(records, passed)
    if to_rewind and drained is not None and thread is not None and not self.should_stop:
        await thread.call_thread(faust_patches.rewind, thread, drained, to_rewind)


async def _pass_on(self: Any, intake: Intake, records: Any, passed: dict[Any, int]) -> list[Any]:
    """Records of other topics to Faust, one by one; returns those of the intake's topics. Stops
    at a flow stop or a new generation, and skips partitions no longer active."""
    generation = self.app.consumer_generation_id
    active = self._get_active_partitions()
    batch: list[Any] = []
    for tp, fetched in records.items():
        if not self.flow_active or self.app.consumer_generation_id != generation:
            break
        if not fetched or (tp not in active and tp not in self._buffered_partitions):
            continue
        if tp.topic in intake.topics:
            batch += fetched
            passed[tp] = fetched[-1].offset + 1
        elif changelog_replay.replay(self.app.tables.recovery, tp, fetched):
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            passed[tp] = fetched[-1].offset + 1
        else:
            await _one_by_one(self, tp, fetched, passed)
    return batch


async def _one_by_one(self: Any, tp: Any, fetched: list[Any], passed: dict[Any, int]) -> None:
    """Faust's own path for a record (recovery and standby changelogs, Faust's topics)."""
    for record in fetched:
        if not self.flow_active:
            return
        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
        await self.wait_first(self.callback(self._to_message(tp, record)), self.suspend_flow.wait())
        passed[tp] = record.offset + 1
