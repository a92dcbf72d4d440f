"""Tasks of the default catalog (SPEC section 4, task table; section 3, ``tasks``)."""

from __future__ import annotations

from rules.engine import Task, resolve_assignee
from state.customer import CustomerState, LatestFollowup
from state.times import DAY
from tests.builders import Customer, day, followup, login, order, profile


def _tasks(customer: Customer) -> list[Task]:
    return [task for result in customer.results for task in result.tasks]


def test_lifecycle_new_creates_a_welcome_call_due_in_one_day() -> None:
    customer = Customer(profile(day(0), owner_rep="rep-owner"), order(day(1), event_id="o1"))
    (task,) = _tasks(customer)
    change = next(c for c in customer.changes if c.to_tag == "new")
    assert task.title == "New customer: welcome call"
    assert task.assignee == "rep-owner"
    assert task.rule_id == "lifecycle.new"
    assert task.kind == "call"
    assert task.change_id == change.change_id
    assert task.customer_id == "c1"
    assert task.created_at == change.effective_at == day(1)
    assert task.due_at == day(1) + DAY


def test_high_value_creates_a_vip_follow_up_due_in_one_day() -> None:
    customer = Customer(*[order(day(i), "1500") for i in range(4)])
    task = next(t for t in _tasks(customer) if t.rule_id == "value.high_value")
    assert task.title == "High-value customer: plan a VIP follow-up"
    assert task.due_at == day(3) + DAY


def test_churn_warning_creates_a_visit_due_in_two_days() -> None:
    customer = Customer(order(day(0)), order(day(1)), order(day(2)), login(day(200)))
    # the warning came from a timer at day 92, before the login at day 200 removed it
    task = next(t for t in _tasks(customer) if t.rule_id == "risk.churn_warning")
    assert task.title == "Churn warning: visit or call the customer"
    assert task.created_at == day(92)
    assert task.due_at == day(94)


def test_high_intent_creates_a_deal_push_for_the_follow_up_rep() -> None:
    customer = Customer(followup(day(0), "quoted", rep="rep-7"))
    (task,) = _tasks(customer)
    assert task.rule_id == "intent.high_intent"
    assert task.title == "High intent: push the deal"
    assert task.assignee == "rep-7"
    assert task.due_at == day(2)


def test_followup_overdue_creates_a_task_due_in_one_day() -> None:
    customer = Customer(followup(day(0), "contacted", rep="rep-3"), login(day(31)))
    task = next(t for t in _tasks(customer) if t.rule_id == "followup.followup_overdue")
    assert task.title == "Follow-up overdue (30+ days)"
    assert task.assignee == "rep-3"
    assert task.created_at == day(30)
    assert task.due_at == day(31)


def test_lead_unattended_goes_to_the_sales_director_due_now() -> None:
    customer = Customer(profile(day(0), owner_rep="rep-owner"), followup(day(0), "new_lead"), login(day(3)))
    task = next(t for t in _tasks(customer) if t.rule_id == "followup.lead_unattended")
    assert task.assignee == "sales-director"
    assert task.title == "Lead not followed up within 3 days"
    assert task.due_at == task.created_at == day(3)


def test_moves_to_tags_without_tasks_create_none() -> None:
    customer = Customer(order(day(0)), login(day(40)))
    rules = [t.rule_id for t in _tasks(customer)]
    assert rules == ["lifecycle.new"]  # growing, standard, active, silent: no tasks


def test_removals_create_no_tasks() -> None:
    customer = Customer(followup(day(0), "new_lead"), followup(day(4), "won"))
    rules = [t.rule_id for t in _tasks(customer)]
    assert rules == ["followup.lead_unattended"]


def test_owner_rep_wins_over_the_follow_up_rep() -> None:
    state = CustomerState("c1", owner_rep="owner-1")
    state.latest_followup = LatestFollowup(day(0), "quoted", "rep-2")
    assert resolve_assignee("owner", state) == "owner-1"


def test_latest_follow_up_rep_when_there_is_no_owner() -> None:
    state = CustomerState("c1")
    state.latest_followup = LatestFollowup(day(0), "quoted", "rep-2")
    assert resolve_assignee("owner", state) == "rep-2"


def test_unassigned_when_there_is_neither_owner_nor_follow_up() -> None:
    assert resolve_assignee("owner", CustomerState("c1")) == "unassigned"
    customer = Customer(order(day(0)))
    assert [t.assignee for t in _tasks(customer)] == ["unassigned"]


def test_a_role_is_assigned_as_is() -> None:
    assert resolve_assignee("sales-director", CustomerState("c1", owner_rep="x")) == "sales-director"


def test_a_cleared_owner_falls_back_to_the_latest_follow_up_rep() -> None:
    customer = Customer(
        profile(day(0), owner_rep="owner-1"),
        followup(day(0), "contacted", rep="rep-9"),
        profile(day(1), owner_rep=None),
        followup(day(2), "proposal", rep="rep-9"),
    )
    task = next(t for t in _tasks(customer) if t.rule_id == "intent.high_intent")
    assert task.assignee == "rep-9"


def test_task_ids_are_deterministic() -> None:
    def run() -> list[str]:
        events = [
            order(day(0), "1500", event_id="a"),
            order(day(1), "1500", event_id="b"),
            order(day(2), "1500", event_id="c"),
            order(day(3), "1500", event_id="d"),
            followup(day(3), "quoted", event_id="f"),
        ]
        customer = Customer(*events)
        return [t.task_id for t in _tasks(customer)]

    first, second = run(), run()
    assert first == second
    assert len(set(first)) == len(first)
    for task_id in first:
        assert task_id.startswith("c1:")


def test_a_task_id_names_its_change() -> None:
    customer = Customer(order(day(0)))
    (task,) = _tasks(customer)
    assert task.task_id.startswith(task.change_id + ":")
