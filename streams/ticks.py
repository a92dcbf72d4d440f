"""Deadline ticks: asking the owner of a partition to fire that partition's due deadlines.

A deadline has no event of its own, but the customer's state may only change inside the agent
(one writer per partition, every change committed like any batch). So a timer looks at the
deadline index of each owned partition and, when something is due, writes a tick record to that
partition of the ticks topic; the agent fires the due deadlines when it reads the tick
(``streams/processor.py``). One tick per partition is in flight at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from state.deadlines import DeadlineIndex

TICK_RETRY = 5.0
"""Seconds after which a tick that was not seen processed is sent again (it may have been lost
with a revoked partition)."""


class Ticker:
    def __init__(self, send: Callable[[list[int]], None]) -> None:
        self.send = send  # writes one tick to each of the given partitions
        self._in_flight: dict[int, float] = {}  # partition -> when its tick was sent

    def due(
        self, now: int, owned: set[int], deadlines: Mapping[int, DeadlineIndex], stale: Mapping[int, list[str]]
    ) -> list[int]:
        """The owned partitions that need a tick now: something due (or to re-evaluate), and no
        tick of theirs in flight."""
        partitions = []
        clock = time.monotonic()
        for partition in owned:
            index = deadlines.get(partition)
            if index is None:
                continue
            earliest = index.earliest()
            due = (earliest is not None and earliest <= now) or stale.get(partition)
            sent = self._in_flight.get(partition)
            if due and (sent is None or clock - sent >= TICK_RETRY):
                self._in_flight[partition] = clock
                partitions.append(partition)
        return partitions

    def tick(
        self, now: int, owned: set[int], deadlines: Mapping[int, DeadlineIndex], stale: Mapping[int, list[str]]
    ) -> None:
        partitions = self.due(now, owned, deadlines, stale)
        if partitions:
            self.send(partitions)

    def handled(self, partitions: set[int]) -> None:
        """The agent processed these partitions' ticks: they may get the next one."""
        for partition in partitions:
            self._in_flight.pop(partition, None)

    def reset(self) -> None:
        self._in_flight.clear()
