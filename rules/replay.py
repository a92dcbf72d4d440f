"""Event-time evaluation of many customers: the engine run offline, with a clock made of events.

"Now" is the largest event time seen so far. Before an event that moves it to T is applied, every
customer deadline at or before T fires, in deadline order, each evaluated at its own moment. This is
the reference the live pipeline is tested against, and what ``tagengine replay`` prints.
Pure: events in, results out; reading files and printing belong to the command.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from rules.catalog import Catalog
from rules.engine import Result, fire_deadlines, process_event
from state.customer import CustomerState
from state.events import Event


class Replay:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.customers: dict[str, CustomerState] = {}
        self.now: int | None = None
        # (deadline, customer_id); an entry is stale when the customer's deadline has moved.
        self._deadlines: list[tuple[int, str]] = []

    def apply(self, event: Event) -> Iterator[Result]:
        """Results of the deadlines the event's time passes, then of the event itself."""
        if self.now is None or event.occurred_at > self.now:
            yield from self.advance(event.occurred_at)
        assert self.now is not None
        state = self.customers.get(event.customer_id)
        is_new = state is None
        if state is None:
            state = CustomerState(event.customer_id)
        before = state.next_deadline
        result = process_event(self.catalog, state, event, self.now)
        if is_new and result.rejected is not None:
            yield result  # a customer known only from a rejected event stays unknown
            return
        self.customers[event.customer_id] = state
        if state.next_deadline is not None and state.next_deadline != before:
            heapq.heappush(self._deadlines, (state.next_deadline, state.customer_id))
        yield result

    def advance(self, until: int) -> Iterator[Result]:
        """Fire every deadline up to ``until`` in deadline order, then set the clock to it."""
        while self._deadlines and self._deadlines[0][0] <= until:
            moment, customer_id = heapq.heappop(self._deadlines)
            state = self.customers[customer_id]
            if state.next_deadline != moment:
                continue  # stale entry
            self.now = moment
            result = fire_deadlines(self.catalog, state, moment)
            if state.next_deadline is not None:
                heapq.heappush(self._deadlines, (state.next_deadline, customer_id))
            yield result
        if self.now is None or until > self.now:
            self.now = until
