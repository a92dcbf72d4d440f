"""The default catalog (SPEC section 4), tag by tag, at its boundaries.

Every age threshold is checked 1 microsecond before, exactly at, and 1 microsecond after; every
count and amount threshold at the value that does not qualify and the one that does.
"""

from __future__ import annotations

import pytest

from rules.engine import decide_tags
from state.codec import encode_state
from state.customer import CustomerState, Outcome
from state.events import OrderEvent
from state.times import DAY
from tests.builders import (
    Customer,
    day,
    default_catalog,
    followup,
    from_json,
    iso,
    item,
    login,
    order,
    profile,
    refund,
    replay,
)

US = 1  # one microsecond

# --------------------------------------------------------------------------------------------
# lifecycle


def test_default_catalog_has_every_tag_of_the_spec() -> None:
    catalog = default_catalog()
    tags = {d.name: [t.name for t in d.tags] for d in catalog.dimensions}
    assert tags == {
        "lifecycle": ["prospect", "new", "growing", "mature"],
        "activity": ["active", "silent", "dormant", "lost"],
        "value": ["high_value", "potential_high_value", "standard"],
        "risk": ["churn_warning"],
        "behavior": ["price_sensitive", "new_product_follower", "frequent_interactor"],
        "intent": ["early", "high_intent", "won", "lost_deal"],
        "followup": ["followup_overdue", "lead_unattended"],
    }
    exclusive = {d.name for d in catalog.dimensions if d.exclusive}
    assert exclusive == {"lifecycle", "activity", "value", "intent"}


def test_prospect_when_known_only_by_a_login() -> None:
    customer = Customer(login(day(0)))
    assert customer.tag_at("lifecycle", day(0)) == "prospect"
    assert customer.tag_at("lifecycle", day(400)) == "prospect"


def test_prospect_when_known_only_by_a_profile_event() -> None:
    customer = Customer(profile(day(0), owner_rep="rep9"))
    tags = customer.tags_at(day(0))
    assert tags["lifecycle"] == "prospect"
    assert tags["activity"] is None  # a profile update is not activity
    assert tags["value"] is None


def test_prospect_when_known_only_by_a_json_profile_record() -> None:
    event = from_json(
        "customers",
        {"event_id": "p1", "customer_id": "c1", "occurred_at": iso(day(0)), "source_channel": "store"},
    )
    _, changes = replay(event)
    assert [(c.dimension, c.from_tag, c.to_tag) for c in changes] == [("lifecycle", None, "prospect")]


def test_a_dead_lettered_refund_does_not_make_a_customer_known() -> None:
    runner, changes = replay(refund("never-seen", day(0)))
    assert changes == []
    assert runner.customers == {}


def test_new_within_30_days_of_the_first_paid_order() -> None:
    customer = Customer(order(day(0)))
    assert customer.tag_at("lifecycle", day(0)) == "new"
    assert customer.tag_at("lifecycle", day(30) - US) == "new"
    assert customer.tag_at("lifecycle", day(30)) == "growing"
    assert customer.tag_at("lifecycle", day(30) + US) == "growing"


def test_growing_after_30_days_with_fewer_than_3_paid_orders() -> None:
    customer = Customer(order(day(0)), order(day(10)))
    assert customer.tag_at("lifecycle", day(30)) == "growing"
    assert customer.tag_at("lifecycle", day(300)) == "growing"


def test_mature_after_30_days_with_3_paid_orders() -> None:
    customer = Customer(order(day(0)), order(day(1)), order(day(2)))
    assert customer.tag_at("lifecycle", day(30) - US) == "new"
    assert customer.tag_at("lifecycle", day(30)) == "mature"
    assert customer.tag_at("lifecycle", day(30) + US) == "mature"


def test_third_paid_order_moves_growing_to_mature() -> None:
    customer = Customer(order(day(0)), order(day(40)))
    assert customer.tag_at("lifecycle", day(50)) == "growing"
    customer.send(order(day(50)))
    assert customer.state.tags["mature"].dimension == "lifecycle"
    assert "growing" not in customer.state.tags


def test_paid_orders_in_total_still_count_after_they_leave_the_refund_window() -> None:
    customer = Customer(order(day(0)), order(day(1)), order(day(2)), login(day(500)))
    assert customer.state.orders == []  # settled
    assert customer.tag_at("lifecycle", day(500)) == "mature"


def test_refund_of_the_first_order_moves_first_paid_order() -> None:
    first = order(day(0))
    customer = Customer(first, order(day(20)), refund(first, day(25)))
    assert customer.state.first_paid_at() == day(20)
    assert customer.tag_at("lifecycle", day(50) - US) == "new"
    assert customer.tag_at("lifecycle", day(50)) == "growing"


def test_a_late_order_older_than_the_others_moves_first_paid_order_back() -> None:
    customer = Customer(order(day(40)))
    assert customer.tag_at("lifecycle", day(40)) == "new"
    customer.send(order(day(0)))  # arrives late: event time day 0, engine time day 40
    assert customer.state.first_paid_at() == day(0)
    assert customer.state.tags["growing"].dimension == "lifecycle"


def test_refunding_the_only_order_makes_the_customer_a_prospect_again() -> None:
    paid = order(day(0), 300)
    customer = Customer(paid, refund(paid, day(1)))
    tags = customer.tags_at(day(1))
    assert tags["lifecycle"] == "prospect"
    assert tags["value"] is None


# --------------------------------------------------------------------------------------------
# activity


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0, "active"),
        (30 * DAY - US, "active"),
        (30 * DAY, "silent"),
        (30 * DAY + US, "silent"),
        (180 * DAY - US, "silent"),
        (180 * DAY, "dormant"),
        (180 * DAY + US, "dormant"),
        (365 * DAY - US, "dormant"),
        (365 * DAY, "lost"),
        (365 * DAY + US, "lost"),
        (3000 * DAY, "lost"),
    ],
)
def test_activity_by_age_of_last_activity(age: int, expected: str) -> None:
    customer = Customer(login(day(0)))
    assert customer.tag_at("activity", day(0) + age) == expected


def test_an_order_is_activity() -> None:
    customer = Customer(order(day(0)))
    assert customer.tag_at("activity", day(30) - US) == "active"
    assert customer.tag_at("activity", day(30)) == "silent"


def test_a_refund_is_activity() -> None:
    paid = order(day(0))
    customer = Customer(paid, refund(paid, day(20)))
    assert customer.state.last_activity_at == day(20)
    assert customer.tag_at("activity", day(50) - US) == "active"
    assert customer.tag_at("activity", day(50)) == "silent"


def test_a_late_login_does_not_move_last_activity_back() -> None:
    customer = Customer(login(day(10)), login(day(2)))
    assert customer.state.last_activity_at == day(10)
    assert customer.tag_at("activity", day(40) - US) == "active"


def test_silent_customer_becomes_active_again_on_login() -> None:
    customer = Customer(login(day(0)), login(day(45)))
    activity = [(c.from_tag, c.to_tag) for c in customer.changes if c.dimension == "activity"]
    assert activity == [(None, "active"), ("active", "silent"), ("silent", "active")]


def test_follow_ups_and_profile_updates_are_not_activity() -> None:
    customer = Customer(followup(day(0)), profile(day(1), owner_rep="rep2"))
    assert customer.state.last_activity_at is None
    assert customer.tag_at("activity", day(1)) is None


# --------------------------------------------------------------------------------------------
# value


def _orders(amounts: list[str], start: float = 0) -> list[OrderEvent]:
    return [order(day(start + index), amount) for index, amount in enumerate(amounts)]


def test_a_customer_with_no_orders_has_no_value_tag() -> None:
    customer = Customer(login(day(0)), followup(day(0), "quoted"))
    assert customer.tag_at("value", day(0)) is None


def test_standard_with_one_small_paid_order() -> None:
    assert Customer(order(day(0), 100)).tag_at("value", day(0)) == "standard"


def test_standard_stays_when_the_only_order_leaves_the_180_day_window() -> None:
    customer = Customer(order(day(0), 3000))
    assert customer.tag_at("value", day(180) - US) == "potential_high_value"
    assert customer.tag_at("value", day(180)) == "standard"
    assert customer.tag_at("value", day(600)) == "standard"


def test_spend_of_exactly_5000_is_not_high_value() -> None:
    customer = Customer(*_orders(["1250", "1250", "1250", "1250"]))
    assert customer.tag_at("value", day(3)) == "potential_high_value"


def test_spend_of_5000_01_with_4_orders_is_high_value() -> None:
    customer = Customer(*_orders(["1250", "1250", "1250", "1250.01"]))
    assert customer.tag_at("value", day(3)) == "high_value"


def test_exactly_3_paid_orders_over_180_days_is_not_high_value() -> None:
    customer = Customer(*_orders(["3000", "3000", "3000"]))
    assert customer.tag_at("value", day(2)) == "potential_high_value"
    customer.send(order(day(3), "1"))
    assert customer.tag_at("value", day(3)) == "high_value"


def test_spend_of_exactly_2000_is_not_potential_high_value() -> None:
    assert Customer(order(day(0), "2000")).tag_at("value", day(0)) == "standard"
    assert Customer(order(day(0), "2000.01")).tag_at("value", day(0)) == "potential_high_value"


def test_3_paid_orders_over_180_days_are_potential_high_value() -> None:
    customer = Customer(*_orders(["10", "10"]))
    assert customer.tag_at("value", day(1)) == "standard"
    customer.send(order(day(2), "10"))
    assert customer.tag_at("value", day(2)) == "potential_high_value"


def test_an_order_exactly_180_days_old_no_longer_counts_in_spend() -> None:
    customer = Customer(order(day(0), "3000"), *_orders(["1000", "1000", "1000"], start=10))
    assert customer.tag_at("value", day(180) - US) == "high_value"
    # spend(180d) is now 3000 over 3 orders: still potential, by both spend and count
    assert customer.tag_at("value", day(180)) == "potential_high_value"
    assert customer.tag_at("value", day(180) + US) == "potential_high_value"


def test_refund_removes_order_from_spend() -> None:
    orders = _orders(["1500", "1500", "1500", "1500"])
    customer = Customer(*orders)
    assert customer.tag_at("value", day(3)) == "high_value"
    customer.send(refund(orders[0], day(4)))
    assert customer.tag_at("value", day(4)) == "potential_high_value"
    assert customer.state.paid_orders_total() == 3


def test_same_order_paid_twice_counts_once() -> None:
    first = order(day(0), "3000", order_id="o-77")
    again = order(day(0), "3000", order_id="o-77")  # a producer retry with a new event id
    customer = Customer(first)
    result = customer.send(again)
    assert result.outcome is Outcome.DUPLICATE
    assert result.changes == []
    assert customer.state.paid_orders_total() == 1
    assert customer.tag_at("value", day(0)) == "potential_high_value"  # 3000, not 6000


def test_a_repeated_paid_order_event_does_not_move_last_activity() -> None:
    customer = Customer(order(day(0), order_id="o-1"), order(day(40), order_id="o-1"))
    assert customer.state.last_activity_at == day(0)
    assert customer.state.tags["silent"].dimension == "activity"


# --------------------------------------------------------------------------------------------
# risk


def _mature() -> Customer:
    return Customer(order(day(0)), order(day(1)), order(day(2)))


def test_churn_warning_for_mature_customer_90_days_after_last_activity() -> None:
    customer = _mature()
    assert "churn_warning" not in customer.tag_at("risk", day(92) - US)  # type: ignore[operator]
    assert customer.tag_at("risk", day(92)) == frozenset({"churn_warning"})
    assert customer.tag_at("risk", day(92) + US) == frozenset({"churn_warning"})


def test_no_churn_warning_for_customer_who_is_not_mature() -> None:
    customer = Customer(order(day(0)), order(day(1)))
    assert customer.tag_at("risk", day(200)) == frozenset()


def test_churn_warning_removed_by_new_activity() -> None:
    customer = _mature()
    customer.send(login(day(100)))
    risk = [(c.from_tag, c.to_tag, c.trigger) for c in customer.changes if c.dimension == "risk"]
    assert risk == [(None, "churn_warning", "timer"), ("churn_warning", None, "event")]


# --------------------------------------------------------------------------------------------
# behavior


def test_price_sensitive_when_exactly_60_percent_of_orders_are_discounted() -> None:
    events = [order(day(i), coupon=i < 3) for i in range(5)]  # 3 of 5
    assert "price_sensitive" in Customer(*events).tag_at("behavior", day(5))  # type: ignore[operator]


def test_not_price_sensitive_below_60_percent() -> None:
    events = [order(day(i), coupon=i < 13) for i in range(22)]  # 13 of 22: 59.09%
    assert "price_sensitive" not in Customer(*events).tag_at("behavior", day(22))  # type: ignore[operator]
    events = [order(day(i), coupon=i < 2) for i in range(5)]  # 2 of 5
    assert "price_sensitive" not in Customer(*events).tag_at("behavior", day(5))  # type: ignore[operator]


def test_price_sensitive_needs_3_paid_orders_over_90_days() -> None:
    customer = Customer(order(day(0), coupon=True), order(day(1), coupon=True))
    assert customer.tag_at("behavior", day(1)) == frozenset()
    customer.send(order(day(2), coupon=True))
    assert customer.tag_at("behavior", day(2)) == frozenset({"price_sensitive"})


def test_an_order_is_discounted_when_more_than_half_of_its_items_are() -> None:
    half = [item(discounted=True), item(discounted=False)]
    most = [item(discounted=True), item(discounted=True), item(discounted=False)]
    assert not order(day(0), items=half).discounted
    assert order(day(0), items=most).discounted
    assert order(day(0), coupon=True, items=half).discounted
    customer = Customer(*[order(day(i), items=half) for i in range(3)])
    assert customer.tag_at("behavior", day(3)) == frozenset()
    customer = Customer(*[order(day(i), items=most) for i in range(3)])
    assert customer.tag_at("behavior", day(3)) == frozenset({"price_sensitive"})


def test_price_sensitive_ends_when_an_order_leaves_the_90_day_window() -> None:
    customer = Customer(*[order(day(i), coupon=True) for i in range(3)])
    assert customer.tag_at("behavior", day(90) - US) == frozenset({"price_sensitive"})
    assert customer.tag_at("behavior", day(90)) == frozenset()


def test_refund_removes_a_discounted_order_from_price_sensitivity() -> None:
    events = [order(day(i), coupon=True) for i in range(3)]
    customer = Customer(*events, refund(events[0], day(4)))
    assert customer.tag_at("behavior", day(4)) == frozenset()


def test_new_product_follower_with_2_new_product_orders_over_90_days() -> None:
    new = [item(new_product=True), item()]
    customer = Customer(order(day(0), items=new))
    assert customer.tag_at("behavior", day(0)) == frozenset()
    customer.send(order(day(10), items=new))
    assert customer.tag_at("behavior", day(90) - US) == frozenset({"new_product_follower"})
    assert customer.tag_at("behavior", day(90)) == frozenset()


def test_5_follow_ups_over_90_days_are_not_frequent_6_are() -> None:
    customer = Customer(*[followup(day(i)) for i in range(5)])
    assert customer.tag_at("behavior", day(5)) == frozenset()
    customer.send(followup(day(5)))
    assert customer.tag_at("behavior", day(90) - US) == frozenset({"frequent_interactor"})
    assert customer.tag_at("behavior", day(90)) == frozenset()  # the first one is 90 days old


def test_a_redelivered_follow_up_is_not_counted_twice() -> None:
    events = [followup(day(i)) for i in range(5)]
    customer = Customer(*events, events[0])
    assert customer.tag_at("behavior", day(5)) == frozenset()


# --------------------------------------------------------------------------------------------
# intent


@pytest.mark.parametrize(
    ("stage", "intent"),
    [
        ("new_lead", "early"),
        ("contacted", "early"),
        ("needs_analysis", "early"),
        ("proposal", "high_intent"),
        ("quoted", "high_intent"),
        ("negotiating", "high_intent"),
        ("won", "won"),
        ("lost", "lost_deal"),
    ],
)
def test_intent_follows_the_latest_stage(stage: str, intent: str) -> None:
    assert Customer(followup(day(0), stage)).tag_at("intent", day(0)) == intent


def test_no_intent_without_follow_ups() -> None:
    assert Customer(order(day(0))).tag_at("intent", day(0)) is None


def test_a_late_follow_up_does_not_replace_the_latest_stage() -> None:
    customer = Customer(followup(day(5), "quoted"), followup(day(1), "won"))
    assert customer.tag_at("intent", day(5)) == "high_intent"


def test_follow_ups_at_the_same_moment_take_the_one_processed_last() -> None:
    customer = Customer(followup(day(5), "quoted"), followup(day(5), "lost"))
    assert customer.tag_at("intent", day(5)) == "lost_deal"


# --------------------------------------------------------------------------------------------
# followup


@pytest.mark.parametrize("stage", ["contacted", "needs_analysis", "proposal", "negotiating"])
def test_followup_overdue_30_days_after_an_early_or_high_intent_follow_up(stage: str) -> None:
    customer = Customer(followup(day(0), stage))
    assert customer.tag_at("followup", day(30) - US) == frozenset()
    assert customer.tag_at("followup", day(30)) == frozenset({"followup_overdue"})
    assert customer.tag_at("followup", day(30) + US) == frozenset({"followup_overdue"})


@pytest.mark.parametrize("stage", ["won", "lost"])
def test_no_followup_overdue_once_the_deal_is_decided(stage: str) -> None:
    assert Customer(followup(day(0), stage)).tag_at("followup", day(100)) == frozenset()


def test_lead_unattended_3_days_after_a_new_lead() -> None:
    customer = Customer(followup(day(0), "new_lead"))
    assert customer.tag_at("followup", day(3) - US) == frozenset()
    assert customer.tag_at("followup", day(3)) == frozenset({"lead_unattended"})
    assert customer.tag_at("followup", day(3) + US) == frozenset({"lead_unattended"})
    assert customer.tag_at("followup", day(30)) == frozenset({"lead_unattended", "followup_overdue"})


def test_a_new_follow_up_attends_the_lead() -> None:
    customer = Customer(followup(day(0), "new_lead"), followup(day(4), "contacted"))
    alerts = [(c.from_tag, c.to_tag) for c in customer.changes if c.dimension == "followup"]
    assert alerts == [(None, "lead_unattended"), ("lead_unattended", None)]
    assert customer.tag_at("followup", day(7)) == frozenset()


# --------------------------------------------------------------------------------------------
# refunds, duplicates, late events


def test_a_refunded_order_counts_nowhere() -> None:
    paid = order(day(0), "9000", coupon=True, items=[item(new_product=True)])
    customer = Customer(paid, refund(paid, day(1)))
    state = customer.state
    assert state.paid_orders_total() == 0
    assert state.first_paid_at() is None
    tags = customer.tags_at(day(1))
    assert tags["lifecycle"] == "prospect"
    assert tags["value"] is None
    assert tags["behavior"] == frozenset()


def test_refund_of_an_unknown_order_is_rejected() -> None:
    customer = Customer(order(day(0)))
    before = (customer.state.paid_orders_total(), customer.state.last_activity_at, dict(customer.state.tags))
    result = customer.send(refund("o-unknown", day(1)))
    assert result.rejected is not None
    assert result.rejected.reason == "refund_unknown_order"
    assert result.changes == []
    after = (customer.state.paid_orders_total(), customer.state.last_activity_at, dict(customer.state.tags))
    assert after == before


def test_refund_365_days_after_the_order_is_rejected() -> None:
    paid = order(day(0))
    customer = Customer(paid)
    result = customer.send(refund(paid, day(365)))
    assert result.rejected is not None
    assert result.rejected.reason in ("refund_window_passed", "refund_unknown_order")
    assert customer.state.paid_orders_total() == 1


def test_refund_just_inside_the_365_day_window_is_accepted() -> None:
    paid = order(day(0))
    customer = Customer(paid)
    result = customer.send(refund(paid, day(365) - US))
    assert result.rejected is None
    assert customer.state.paid_orders_total() == 0


def test_the_same_event_applied_twice_changes_nothing() -> None:
    events = [
        order(day(0), "2500", event_id="o"),
        login(day(1), event_id="l"),
        followup(day(1), "quoted", event_id="f"),
        profile(day(1), owner_rep="rep5", event_id="p"),
    ]
    customer = Customer(*events)
    before = encode_state(customer.state)
    for event in events:
        result = customer.send(event)
        assert result.outcome is Outcome.DUPLICATE
        assert result.changes == []
        assert result.tasks == []
    assert encode_state(customer.state) == before


def test_a_redelivered_order_event_is_a_duplicate() -> None:
    paid = order(day(0), "2500")
    customer = Customer(paid)
    seq = customer.state.seq
    result = customer.send(paid)
    assert result.outcome is Outcome.DUPLICATE
    assert result.changes == []
    assert customer.state.seq == seq
    assert customer.state.paid_orders_total() == 1


def test_a_late_order_counts_in_windows_by_its_own_event_time() -> None:
    customer = Customer(login(day(200)))
    customer.send(order(day(10), "3000"))  # 190 days old when it arrives
    tags = customer.tags_at(day(200))
    assert tags["value"] == "standard"
    assert tags["lifecycle"] == "growing"
    assert customer.state.last_activity_at == day(200)


def test_a_late_order_older_than_365_days_counts_in_the_total_only() -> None:
    customer = Customer(login(day(500)), order(day(0)), order(day(1)), order(day(2)))
    assert customer.state.orders == []
    assert customer.state.paid_orders_total() == 3
    assert customer.tags_at(day(500))["lifecycle"] == "mature"
    assert customer.tags_at(day(500))["value"] == "standard"


def test_decide_tags_is_pure() -> None:
    state = CustomerState("c1")
    decide_tags(default_catalog(), state, day(0))
    assert state.tags == {}
    assert state.seq == 0
