"""Deadlines, timers and the shape of tag changes (SPEC sections 3 and 8)."""

from __future__ import annotations

import pytest

from rules.engine import CATALOG, EVENT, TIMER, fire_deadlines, next_deadline, reevaluate
from state.customer import CustomerState
from tests.builders import (
    Customer,
    day,
    default_catalog,
    followup,
    login,
    moves,
    order,
    profile,
    refund,
    replay,
)

US = 1

# --------------------------------------------------------------------------------------------
# next_deadline: exactly the moment a condition flips


def test_next_deadline_of_a_login_is_when_active_turns_silent() -> None:
    customer = Customer(login(day(0)))
    assert customer.state.next_deadline == day(30)
    assert next_deadline(customer.catalog, customer.state, day(0)) == day(30)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (day(30) - US, day(30)),
        (day(30), day(90)),  # churn_warning's 90 days: checked even if it cannot apply
        (day(90), day(180)),
        (day(180), day(365)),
        (day(365), None),
    ],
)
def test_next_deadline_is_the_next_age_threshold_after_now(now: int, expected: int | None) -> None:
    state = Customer(login(day(0))).state
    assert next_deadline(default_catalog(), state, now) == expected


def test_next_deadline_of_a_new_lead_is_3_days_later() -> None:
    assert Customer(followup(day(0), "new_lead")).state.next_deadline == day(3)


def test_next_deadline_includes_orders_leaving_a_window() -> None:
    state = Customer(order(day(0))).state
    catalog = default_catalog()
    # 30d: new -> growing and active -> silent; then 90d: last_activity and the 90-day windows.
    assert next_deadline(catalog, state, day(0)) == day(30)
    assert next_deadline(catalog, state, day(30)) == day(90)
    assert next_deadline(catalog, state, day(90)) == day(180)  # dormant and the 180-day windows


def test_a_window_deadline_is_when_the_oldest_order_still_inside_leaves_it() -> None:
    state = Customer(order(day(10)), order(day(0)), order(day(5))).state  # one of them late
    # The 90-day windows: the order of day 0 has left at day 92, the one of day 5 leaves next.
    assert next_deadline(default_catalog(), state, day(92)) == day(95)


def test_no_deadline_for_a_customer_known_only_by_a_profile() -> None:
    assert Customer(profile(day(0), owner_rep="r")).state.next_deadline is None


def test_the_deadline_moves_with_new_activity() -> None:
    customer = Customer(login(day(0)), login(day(10)))
    assert customer.state.next_deadline == day(40)


def test_fire_deadlines_evaluates_each_deadline_at_its_own_moment() -> None:
    customer = Customer(login(day(0)))
    result = fire_deadlines(customer.catalog, customer.state, day(400))
    assert [(c.from_tag, c.to_tag, c.effective_at) for c in result.changes] == [
        ("active", "silent", day(30)),
        ("silent", "dormant", day(180)),
        ("dormant", "lost", day(365)),
    ]
    assert {c.trigger for c in result.changes} == {TIMER}
    assert customer.state.next_deadline is None


def test_fire_deadlines_does_nothing_before_the_deadline() -> None:
    customer = Customer(login(day(0)))
    result = fire_deadlines(customer.catalog, customer.state, day(30) - US)
    assert result.changes == []
    assert customer.state.next_deadline == day(30)


# --------------------------------------------------------------------------------------------
# Replay: timers in event time


def test_replay_fires_deadlines_in_order_with_trigger_timer() -> None:
    _, changes = replay(login(day(0)), login(day(400), customer="other"))
    mine = [c for c in changes if c.customer_id == "c1"]
    assert [(c.dimension, c.from_tag, c.to_tag, c.trigger) for c in mine] == [
        ("lifecycle", None, "prospect", EVENT),
        ("activity", None, "active", EVENT),
        ("activity", "active", "silent", TIMER),
        ("activity", "silent", "dormant", TIMER),
        ("activity", "dormant", "lost", TIMER),
    ]
    timers = [c for c in mine if c.trigger == TIMER]
    assert [c.effective_at for c in timers] == [day(30), day(180), day(365)]
    assert all(c.event_id is None for c in timers)


def test_silent_after_30_days_without_activity() -> None:
    _, changes = replay(login(day(0)), until=day(30))
    silent = changes[-1]
    assert (silent.from_tag, silent.to_tag) == ("active", "silent")
    assert silent.rule_id == "activity.silent"
    assert silent.trigger == TIMER
    assert silent.effective_at == day(30)
    assert silent.reason == {"days_since_last_activity": 30.0}


def test_not_silent_one_microsecond_before_30_days() -> None:
    _, changes = replay(login(day(0)), until=day(30) - US)
    assert moves(changes, "activity") == [(None, "active")]


def test_replay_interleaves_deadlines_of_several_customers_in_deadline_order() -> None:
    _, changes = replay(
        login(day(0), customer="a"),
        login(day(10), customer="b"),
        login(day(20), customer="c"),
        until=day(100),
    )
    timers = [(c.effective_at, c.customer_id) for c in changes if c.trigger == TIMER]
    assert timers == [(day(30), "a"), (day(40), "b"), (day(50), "c")]


def test_a_deadline_at_the_time_of_the_next_event_fires_before_the_event() -> None:
    _, changes = replay(login(day(0)), login(day(30)))
    assert [(c.from_tag, c.to_tag, c.trigger) for c in changes if c.dimension == "activity"] == [
        (None, "active", EVENT),
        ("active", "silent", TIMER),
        ("silent", "active", EVENT),
    ]


def test_an_event_changes_carry_its_id_and_event_time() -> None:
    event = order(day(0), event_id="evt-1")
    _, changes = replay(event)
    assert {c.event_id for c in changes} == {"evt-1"}
    assert {c.effective_at for c in changes} == {day(0)}
    assert {c.trigger for c in changes} == {EVENT}


def test_a_late_event_is_effective_at_its_own_event_time() -> None:
    _, changes = replay(login(day(50), customer="x"), order(day(40), event_id="late"))
    late = [c for c in changes if c.event_id == "late"]
    assert late
    assert {c.effective_at for c in late} == {day(40)}


def test_a_late_first_order_never_makes_a_tag_true_that_its_own_age_rules_out() -> None:
    # Known since day 50 by a login; an order of day 10 arrives late: it is 40 days old, so the
    # customer goes straight to growing, never through new (which needs the order under 30 days).
    _, changes = replay(login(day(50)), order(day(10), event_id="late"))
    assert moves(changes, "lifecycle") == [(None, "prospect"), ("prospect", "growing")]


def test_a_late_order_moves_the_next_deadline_earlier() -> None:
    customer = Customer(login(day(50)), order(day(45), order_id="o1"))
    assert customer.state.next_deadline == day(75)  # new -> growing 30 days after day 45
    customer.send(order(day(40), order_id="o0", event_id="late"))
    assert customer.state.next_deadline == day(70)  # the first paid order is now day 40


def test_replay_until_fires_remaining_deadlines() -> None:
    runner, changes = replay(followup(day(0), "new_lead"), until=day(3))
    assert moves(changes, "followup") == [(None, "lead_unattended")]
    assert runner.now == day(3)


# --------------------------------------------------------------------------------------------
# Shape of changes


def test_seq_increases_by_one_per_change_of_a_customer() -> None:
    _, changes = replay(
        order(day(0)),
        order(day(1), customer="other"),
        followup(day(2), "new_lead"),
        order(day(3)),
        order(day(4)),
        until=day(400),
    )
    mine = [c for c in changes if c.customer_id == "c1"]
    assert [c.seq for c in mine] == list(range(1, len(mine) + 1))
    assert [c.change_id for c in mine] == [f"c1:{n}" for n in range(1, len(mine) + 1)]
    others = [c.seq for c in changes if c.customer_id == "other"]
    assert others == list(range(1, len(others) + 1))


def test_an_exclusive_dimension_emits_one_change_per_move() -> None:
    _, changes = replay(order(day(0)), order(day(1)), order(day(2)), until=day(30))
    assert moves(changes, "lifecycle") == [(None, "new"), ("new", "mature")]


def test_an_exclusive_tag_with_no_replacement_goes_to_null() -> None:
    paid = order(day(0), "100")
    _, changes = replay(paid, refund(paid, day(1)))
    assert moves(changes, "value") == [(None, "standard"), ("standard", None)]
    assert moves(changes, "lifecycle") == [(None, "new"), ("new", "prospect")]
    removal = [c for c in changes if c.dimension == "value"][-1]
    assert removal.rule_id == "value.standard"


def test_a_non_exclusive_dimension_emits_adds_and_removes() -> None:
    events = [order(day(i), coupon=True) for i in range(3)]
    _, changes = replay(*events, order(day(3), items=[]), until=day(100))
    behavior = [c for c in changes if c.dimension == "behavior"]
    assert moves(behavior) == [(None, "price_sensitive"), ("price_sensitive", None)]
    added, removed = behavior
    assert added.trigger == EVENT
    # 3 of 4 orders discounted until the first leaves the 90-day window (2 of 3 still >= 60%),
    # then the second: 1 of 2 orders, fewer than 3.
    assert removed.trigger == TIMER
    assert removed.effective_at == day(91)


def test_two_tags_of_a_non_exclusive_dimension_are_added_separately() -> None:
    _, changes = replay(followup(day(0), "new_lead"), until=day(30))
    assert moves(changes, "followup") == [(None, "lead_unattended"), (None, "followup_overdue")]
    assert [c.effective_at for c in changes if c.dimension == "followup"] == [day(3), day(30)]


def test_reason_holds_the_values_the_rule_looked_at() -> None:
    events = [order(day(i), "1500") for i in range(4)]
    _, changes = replay(*events)
    high = next(c for c in changes if c.to_tag == "high_value")
    assert high.reason == {"spend_180d": 6000, "paid_orders_180d": 4}
    assert high.catalog_version == default_catalog().version


def test_reason_of_churn_warning_names_lifecycle_and_activity_age() -> None:
    _, changes = replay(order(day(0)), order(day(1)), order(day(2)), until=day(92))
    churn = next(c for c in changes if c.to_tag == "churn_warning")
    assert churn.reason == {"lifecycle": "mature", "days_since_last_activity": 90.0}


def test_state_remembers_each_tag_with_since_and_seq() -> None:
    runner, changes = replay(login(day(0)), until=day(30))
    state = runner.customers["c1"]
    silent = state.tags["silent"]
    assert silent.dimension == "activity"
    assert silent.since == day(30)
    assert silent.seq == changes[-1].seq
    assert "active" not in state.tags


def test_reevaluating_with_the_same_catalog_changes_nothing() -> None:
    customer = Customer(order(day(0)), login(day(5)))
    result = reevaluate(customer.catalog, customer.state, day(5))
    assert result.changes == []


def test_reevaluating_a_fresh_state_emits_catalog_changes() -> None:
    state = CustomerState("c9")
    state.last_activity_at = day(0)
    result = reevaluate(default_catalog(), state, day(40))
    assert [(c.dimension, c.to_tag, c.trigger) for c in result.changes] == [
        ("lifecycle", "prospect", CATALOG),
        ("activity", "silent", CATALOG),
    ]
    assert state.next_deadline == day(90)


def test_an_age_compared_with_greater_than_flips_one_microsecond_after_the_duration() -> None:
    from rules.catalog import parse_catalog

    catalog = parse_catalog(
        b"""
catalog: strict
dimensions:
  quiet:
    exclusive: true
    name: {en: Quiet}
    tags:
      over_a_day:
        name: {en: Over a day}
        definition: {en: Last activity more than a day ago.}
        when: age(last_activity) > 1d
      at_most_two_days:
        name: {en: At most two days}
        definition: {en: Last activity two days ago or less.}
        when: 2d >= age(last_activity)
""",
        "strict.yaml",
    )
    customer = Customer(login(day(0)), catalog=catalog)
    assert customer.state.next_deadline == day(1) + US  # at exactly 1d, "> 1d" is still false
    assert customer.tags_at(day(1)) == {"quiet": "at_most_two_days"}
    assert customer.tags_at(day(1) + US) == {"quiet": "over_a_day"}
    assert next_deadline(catalog, customer.state, day(1) + US) == day(2) + US
