"""tagengine watch: which messages a filter lets through."""

from __future__ import annotations

from connectors.watch import Filter

CHANGE = {"customer_id": "c1", "dimension": "value", "from": "standard", "to": "high_value"}
TASK = {"customer_id": "c1", "rule_id": "value.high_value", "assignee": "rep-01"}


def test_a_tag_filter_keeps_changes_into_or_out_of_it_and_the_tasks_of_entering_it() -> None:
    into, out_of = Filter(("tag-changes", "tasks"), tag="high_value"), Filter(("tag-changes",), tag="standard")
    assert into.wants("p-tag-changes", CHANGE) and out_of.wants("p-tag-changes", CHANGE)
    assert into.wants("p-tasks", TASK) and not out_of.wants("p-tasks", TASK)
    assert not Filter(("tag-changes",), tag="value").wants("p-tag-changes", CHANGE)  # a dimension is not a tag


def test_a_customer_filter_keeps_that_customers_messages_only() -> None:
    assert Filter(("tasks",), customer="c1").wants("tasks", TASK)
    assert not Filter(("tasks",), customer="c2").wants("tasks", TASK)
