"""Decoded customer states kept between batches, so a busy customer is not decoded every batch.

A bounded least-recently-used map from customer id to its ``CustomerState``, remembering which
partition each customer lives on so that everything of a revoked partition can be dropped at once
(its next owner may change it; our copy would be stale). The cache only ever holds states that
match what was committed: the worker stops rather than go on after a batch it could not commit.
"""

from __future__ import annotations

from collections import OrderedDict

from state.customer import CustomerState


class StateCache:
    __slots__ = ("_states", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, tuple[int, CustomerState]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, customer_id: str) -> CustomerState | None:
        entry = self._states.get(customer_id)
        if entry is None:
            return None
        self._states.move_to_end(customer_id)
        return entry[1]

    def put(self, partition: int, state: CustomerState) -> None:
        if self.capacity <= 0:
            return
        self._states[state.customer_id] = (partition, state)
        self._states.move_to_end(state.customer_id)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)

    def drop_partitions(self, keep: set[int]) -> int:
        """Forget every customer whose partition is not in ``keep``; returns how many."""
        gone = [customer for customer, (partition, _) in self._states.items() if partition not in keep]
        for customer in gone:
            del self._states[customer]
        return len(gone)

    def clear(self) -> None:
        self._states.clear()
