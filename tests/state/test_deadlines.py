"""The per-partition deadline index: earliest first, moved deadlines never fire twice."""

from __future__ import annotations

from state.deadlines import DeadlineIndex


def test_due_customers_come_out_oldest_first_up_to_the_limit() -> None:
    index = DeadlineIndex()
    for customer, deadline in (("c", 30), ("a", 10), ("b", 20), ("d", 40)):
        index.set(customer, deadline)
    assert index.pop_due(now=30, limit=2) == [(10, "a"), (20, "b")]
    assert index.pop_due(now=30, limit=10) == [(30, "c")]
    assert index.earliest() == 40 and len(index) == 1


def test_a_moved_deadline_fires_only_at_its_new_time() -> None:
    index = DeadlineIndex()
    index.set("a", 10)
    index.set("a", 50)
    assert index.pop_due(now=40, limit=10) == []
    assert index.pop_due(now=50, limit=10) == [(50, "a")]


def test_a_customer_without_deadline_leaves_the_index() -> None:
    index = DeadlineIndex()
    index.set("a", 10)
    index.set("a", None)
    assert len(index) == 0 and index.earliest() is None and index.pop_due(100, 10) == []


def test_nothing_is_due_before_its_time() -> None:
    index = DeadlineIndex()
    index.set("a", 10)
    assert index.pop_due(now=9, limit=10) == [] and index.due_count(9) == 0 and index.due_count(10) == 1


def test_stale_entries_are_compacted_away() -> None:
    index = DeadlineIndex()
    for moment in range(5000):
        index.set("a", moment)
    assert len(index._heap) < 2 * 1 + 1024 + 2
    assert index.pop_due(now=10_000, limit=10) == [(4999, "a")]
