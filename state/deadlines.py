"""Per-partition deadline index: which customers have a deadline, and who is due first.

A worker keeps one index per partition it owns, so firing deadlines never scans customers: it
pops the earliest entries. The index is derived state, rebuilt from the customer table whenever
partitions are assigned (the table is what survives a crash), and updated as the agent writes
customers. A heap gives the order; a dict holds each customer's current deadline, so an entry left
behind by a deadline that moved is recognised as stale and skipped instead of being searched for.
"""

from __future__ import annotations

import heapq


class DeadlineIndex:
    __slots__ = ("_current", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._current: dict[str, int] = {}

    def __len__(self) -> int:
        """Customers with a pending deadline."""
        return len(self._current)

    def set(self, customer_id: str, deadline: int | None) -> None:
        """Record a customer's next deadline (None: it has none)."""
        if deadline is None:
            self._current.pop(customer_id, None)
            return
        if self._current.get(customer_id) == deadline:
            return
        self._current[customer_id] = deadline
        heapq.heappush(self._heap, (deadline, customer_id))
        if len(self._heap) > 2 * len(self._current) + 1024:
            self._compact()

    def earliest(self) -> int | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: int, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` (deadline, customer) pairs due at ``now``, oldest first, removed."""
        due: list[tuple[int, str]] = []
        while len(due) < limit:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                break
            deadline, customer_id = heapq.heappop(self._heap)
            del self._current[customer_id]
            due.append((deadline, customer_id))
        return due

    def due_count(self, now: int) -> int:
        """How many customers are overdue at ``now`` (for progress reports; O(n))."""
        return sum(1 for deadline in self._current.values() if deadline <= now)

    def _drop_stale(self) -> None:
        heap, current = self._heap, self._current
        while heap and current.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)

    def _compact(self) -> None:
        self._heap = [(deadline, customer) for customer, deadline in self._current.items()]
        heapq.heapify(self._heap)
