"""Changelog records reach a table's store a fetch at a time, not through Faust's recovery loop
one record at a time.

While a worker restores a partition (after a restart or a takeover) and, all the time, for the
partitions it keeps a standby copy of, it reads the customer table's changelog. Faust 0.15.3 hands
each such record through the same per-record machinery as an agent's (``wait_first`` racing the
conductor's callback against flow control, an ``Event``, the changelog queue), then its recovery
loop (``Recovery._slurp_changelogs``, ``faust/tables/recovery.py:773-916``) takes it off the queue
with ``asyncio.wait_for`` - a task per record - and buffers it until 1,000 are ready for one store
write. Measured: about 190 us per record (a worker restoring 200,000 customers was ready after
57-63 s; 7.5 s with ``replay``). With two workers each replays the other's changelog, one to two
records per event, so at that cost a standby copy could not keep up with a busy owner.

``replay`` does that loop's bookkeeping for a fetch's records of one changelog partition at once:
the offsets recovery reads its progress from, the same buffer and flush threshold, the end of
recovery once every active partition has caught up, and standbys reported ready. The buffer is
the recovery's own, so its other flushes (on a revocation, before a new recovery, at shutdown)
still write these records. A partition the recovery does not know, or a table with a changelog
callback, takes Faust's path unchanged.

Pinned to faust-streaming 0.15.3 with the other patches (``faust_patches.apply`` checks the version).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from time import monotonic
from typing import Any

from faust.types import TP
from faust.utils.tracing import finish_span


@dataclass(slots=True)
class ChangelogEvent:
    """A changelog record as ``Table.apply_changelog_batch`` and Faust's stores read an event:
    ``event.message.value``, ``event.key``. It is its own message."""

    tp: TP
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]

    @property
    def message(self) -> ChangelogEvent:
        return self

    @property
    def partition(self) -> int:
        return self.tp.partition


def replay(recovery: Any, tp: TP, records: Sequence[Any]) -> bool:
    """Hand a fetch's records (aiokafka ``ConsumerRecord``s, in offset order) of changelog
    partition ``tp`` to ``recovery`` (the app's ``faust.tables.recovery.Recovery``), as its loop
    would one by one. False, having done nothing, when that partition should take Faust's path."""
    if tp in recovery.active_tps:
        active, offsets = True, recovery.active_offsets
    elif tp in recovery.standby_tps:
        active, offsets = False, recovery.standby_offsets
    else:
        return False
    table = recovery.tp_to_table[tp]
    if table._on_changelog_event is not None:
        return False
    recovery.signal_recovery_end.clear()  # as every turn of the loop: set again below if still true
    seen = offsets.get(tp)
    fresh = [
        ChangelogEvent(tp, record.offset, record.key, record.value, record.headers)
        for record in records
        if seen is None or record.offset > seen
    ]
    if fresh:
        now = monotonic()
        offsets[tp] = fresh[-1].offset
        (recovery._active_events_received_at if active else recovery._standby_events_received_at)[tp] = now
        buffer = recovery.buffers[table]
        buffer.extend(fresh)
        if len(buffer) >= (table.recovery_buffer_size if active else table.standby_buffer_size):
            table.apply_changelog_batch(buffer)
            buffer.clear()
            recovery._last_flush_at = now
    _signal_progress(recovery)
    return True


def _signal_progress(recovery: Any) -> None:
    """The end of active recovery and the readiness of standbys, as the loop signals them after
    each record (``_maybe_signal_recovery_end`` and what follows it)."""
    if recovery.in_recovery and not recovery.need_recovery():
        recovery.flush_buffers()
        recovery._set_recovery_ended()
        if recovery._actives_span is not None:
            recovery._actives_span.set_tag("Actives-Ready", True)
        recovery.signal_recovery_end.set()
    standbys_ready = recovery._standbys_span is None and recovery.tables.standbys_ready
    if not standbys_ready and not recovery.standby_remaining_total():
        if recovery._standbys_span:
            finish_span(recovery._standbys_span)
            recovery._standbys_span = None
        recovery.tables.on_standbys_ready()
