"""A safety net for input partitions that are assigned but not fetched.

Faust has left an assigned partition unfetched after a rebalance (faust-streaming issues 471
and 629): the worker looks healthy and processes nothing. This watchdog notices an input partition
that has records waiting but whose read position has not moved for ``STALL_SECONDS``, and for
which aiokafka holds no fetched records either, counts it (``tagengine_partition_stalls_total``)
and asks for a new group generation, which restarts fetching. A partition whose next records sit
in aiokafka's buffer is only queued behind a busy worker: rejoining would stop the whole group.
The cause of the stalls seen so far is fixed in ``streams/faust_patches.py``; this stays as a net.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)
STALL_CHECK_SECONDS = 2.5
STALL_SECONDS = 6.0


class StallWatchdog:
    def __init__(self, consumer: Any, input_topics: set[str]) -> None:
        self.consumer = consumer  # Faust's consumer
        self.inputs = input_topics
        self._progress: dict[Any, tuple[int | None, float]] = {}  # partition -> (read offset, since)
        self.last_stalled: list[Any] = []  # what the last check found, for /health

    def stalled(self) -> list[Any]:
        """Input partitions with records waiting and no progress for ``STALL_SECONDS``."""
        consumer = self.consumer
        read_offsets = consumer._read_offset  # Faust keeps no public "position"
        committed = consumer._committed_offset
        now = time.monotonic()
        stalled = []
        for tp in consumer.assignment():
            if tp.topic not in self.inputs:
                continue
            position = read_offsets.get(tp)
            if position is None:
                position = committed.get(tp)
            waiting = (consumer.highwater(tp) or 0) > (position + 1 if position is not None else 0)
            last, since = self._progress.get(tp, (-1, now))
            if position != last or not waiting:
                self._progress[tp] = (position, now)
            elif now - since >= STALL_SECONDS and not self._queued(tp):
                stalled.append(tp)
                self._progress[tp] = (position, now)
        self.last_stalled = stalled
        return stalled

    def _queued(self, tp: Any) -> bool:
        """aiokafka holds fetched records of ``tp``: they are handed on when the worker next asks."""
        aiokafka_consumer = getattr(getattr(self.consumer, "_thread", None), "_consumer", None)
        fetcher = getattr(aiokafka_consumer, "_fetcher", None)
        return fetcher is not None and fetcher._records.get(TopicPartition(tp.topic, tp.partition)) is not None

    def forget(self) -> None:
        """While rebalancing or owning nothing, progress means nothing."""
        self._progress.clear()
        self.last_stalled = []

    async def rejoin(self, stalled: list[Any]) -> None:
        log.warning("input partitions %s have records but made no progress for %.0f s: rejoining the group",
                    sorted(f"{tp.topic}[{tp.partition}]" for tp in stalled), STALL_SECONDS)
        # Resuming or seeking the partitions does not wake them; a new group generation does.
        thread = self.consumer._thread
        await thread.call_thread(lambda: thread._ensure_consumer()._coordinator.request_rejoin())
