"""Deadline ticks: one per partition with something due, none while one is in flight."""

from __future__ import annotations

from state.deadlines import DeadlineIndex
from streams.ticks import Ticker

NOW = 1_000_000


def index(*deadlines: int) -> DeadlineIndex:
    result = DeadlineIndex()
    for number, deadline in enumerate(deadlines):
        result.set(f"c{number}", deadline)
    return result


def test_only_owned_partitions_with_a_due_deadline_or_customers_to_reevaluate_get_a_tick() -> None:
    sent: list[list[int]] = []
    ticker = Ticker(sent.append)
    deadlines = {0: index(NOW - 1), 1: index(NOW + 1), 2: index(), 3: index(NOW - 5)}
    ticker.tick(NOW, {0, 1, 2}, deadlines, {2: ["c9"]})
    assert sent == [[0, 2]]


def test_no_second_tick_while_one_is_in_flight_and_the_next_once_it_was_handled() -> None:
    sent: list[list[int]] = []
    ticker = Ticker(sent.append)
    deadlines = {0: index(NOW - 1)}
    ticker.tick(NOW, {0}, deadlines, {})
    ticker.tick(NOW, {0}, deadlines, {})
    assert sent == [[0]]
    ticker.handled({0})
    ticker.tick(NOW, {0}, deadlines, {})
    assert sent == [[0], [0]]
