"""Per-customer aggregates (state/customer.py): what each event does to the state."""

from __future__ import annotations

from decimal import Decimal

import pytest

from state.customer import (
    RECENT_EVENT_IDS,
    CustomerState,
    Outcome,
    RejectedEvent,
    apply_event,
    settle,
    short_hash,
)
from state.events import Event
from tests.builders import day, followup, login, order, profile, refund

US = 1


def run(*events: Event) -> CustomerState:
    """Apply events in order, each at the largest event time seen so far."""
    state = CustomerState("c1")
    now: int | None = None
    for event in events:
        now = event.occurred_at if now is None else max(now, event.occurred_at)
        apply_event(state, event, now)
    return state


def rejection(state: CustomerState, event: Event, now: int) -> RejectedEvent:
    with pytest.raises(RejectedEvent) as caught:
        apply_event(state, event, now)
    return caught.value


# --------------------------------------------------------------------------------------------
# orders


def test_a_paid_order_is_kept_with_its_amount_and_flags() -> None:
    state = run(order(day(0), "12.50", order_id="o1", coupon=True, new_product=True))
    (kept,) = state.orders
    assert kept.key == short_hash("o1")
    assert (kept.at, kept.amount, kept.discounted, kept.new_product, kept.refunded) == (
        day(0),
        Decimal("12.50"),
        True,
        True,
        False,
    )
    assert state.paid_orders_total() == 1
    assert state.first_paid_at() == day(0)
    assert state.last_activity_at == day(0)


def test_orders_are_kept_in_event_time_order_even_when_late() -> None:
    state = run(order(day(5)), order(day(1)), order(day(3)), order(day(9)))
    assert [o.at for o in state.orders] == [day(1), day(3), day(5), day(9)]


def test_follow_ups_and_logins_are_kept_in_event_time_order_even_when_late() -> None:
    # What the engine's window deadlines rely on: the oldest element is the first to leave.
    state = run(*(make(day(d)) for d in (5, 1, 3, 9) for make in (followup, login)))
    assert [f.at for f in state.followups] == [day(1), day(3), day(5), day(9)]
    assert [x.at for x in state.logins] == [day(1), day(3), day(5), day(9)]


def test_refund_removes_order_from_count_and_first_paid_order() -> None:
    state = run(order(day(0), order_id="o1"), order(day(4), order_id="o2"), refund("o1", day(6)))
    assert state.paid_orders_total() == 1
    assert state.first_paid_at() == day(4)
    assert state.last_activity_at == day(6)  # a refund is activity


def test_refund_of_an_unknown_order_is_rejected_and_changes_nothing() -> None:
    state = run(order(day(0), order_id="o1"))
    before = (list(state.orders), list(state.recent_event_ids), state.last_activity_at)
    problem = rejection(state, refund("o-404", day(1), event_id="r1"), day(1))
    assert problem.reason == "refund_unknown_order"
    assert "o-404" in problem.message
    assert (state.orders, state.recent_event_ids, state.last_activity_at) == before


def test_refund_365_days_or_more_after_the_order_is_rejected() -> None:
    state = run(order(day(0), order_id="o1"))
    problem = rejection(state, refund("o1", day(365)), day(365))
    assert problem.reason == "refund_window_passed"
    assert state.paid_orders_total() == 1
    assert state.last_activity_at == day(0)


def test_refund_just_inside_the_window_is_accepted() -> None:
    state = run(order(day(0), order_id="o1"))
    assert apply_event(state, refund("o1", day(365) - US), day(365) - US) is Outcome.APPLIED
    assert state.paid_orders_total() == 0


def test_refund_of_a_settled_order_is_rejected_as_unknown() -> None:
    state = run(order(day(0), order_id="o1"), login(day(366)))
    assert state.orders == []
    assert rejection(state, refund("o1", day(366)), day(366)).reason == "refund_unknown_order"


def test_a_second_refund_of_the_same_order_is_a_duplicate_and_not_activity() -> None:
    state = run(order(day(0), order_id="o1"), refund("o1", day(1)))
    assert apply_event(state, refund("o1", day(50)), day(50)) is Outcome.DUPLICATE
    assert state.last_activity_at == day(1)
    assert state.paid_orders_total() == 0


def test_the_same_order_paid_twice_counts_once() -> None:
    state = run(order(day(0), "300", order_id="o1"))
    assert apply_event(state, order(day(0), "300", order_id="o1"), day(0)) is Outcome.DUPLICATE
    assert state.paid_orders_total() == 1
    assert len(state.orders) == 1


def test_a_paid_event_after_the_refund_does_not_revive_the_order() -> None:
    state = run(order(day(0), order_id="o1"), refund("o1", day(1)), order(day(0), order_id="o1"))
    assert state.paid_orders_total() == 0


def test_a_late_order_older_than_365_days_is_settled_at_once() -> None:
    state = run(login(day(400)), order(day(10), order_id="old"))
    assert state.orders == []
    assert state.paid_orders_total() == 1
    assert state.first_paid_at() == day(10)
    assert state.last_activity_at == day(400)


# --------------------------------------------------------------------------------------------
# settling: orders and follow-ups older than 365 days


def test_settling_keeps_paid_orders_total_and_first_paid_at() -> None:
    state = run(
        order(day(0), order_id="a"),
        order(day(10), order_id="b"),
        order(day(20), order_id="c"),
        refund("c", day(21)),
        order(day(300), order_id="d"),
    )
    assert (state.paid_orders_total(), state.first_paid_at()) == (3, day(0))
    settle(state, day(365) - US)
    assert len(state.orders) == 4
    settle(state, day(365))
    assert [o.at for o in state.orders] == [day(10), day(20), day(300)]
    assert (state.settled_paid, state.settled_first_paid_at) == (1, day(0))
    assert (state.paid_orders_total(), state.first_paid_at()) == (3, day(0))
    settle(state, day(386))
    assert [o.at for o in state.orders] == [day(300)]
    assert state.settled_paid == 2  # the refunded order is dropped, not counted
    assert (state.paid_orders_total(), state.first_paid_at()) == (3, day(0))
    settle(state, day(1000))
    assert state.orders == []
    assert (state.paid_orders_total(), state.first_paid_at()) == (3, day(0))


def test_settled_first_paid_at_is_the_earliest() -> None:
    state = run(order(day(100), order_id="a"), login(day(500)), order(day(50), order_id="late"))
    assert state.settled_paid == 2
    assert state.settled_first_paid_at == day(50)


def test_follow_ups_are_pruned_after_365_days_but_the_latest_is_kept() -> None:
    state = run(followup(day(0), "contacted"), followup(day(100), "quoted", rep="rep2"))
    settle(state, day(365) - US)
    assert [f.at for f in state.followups] == [day(0), day(100)]
    settle(state, day(365))
    assert [f.at for f in state.followups] == [day(100)]
    settle(state, day(465))
    assert state.followups == []
    assert state.latest_followup is not None
    assert (state.latest_followup.stage, state.latest_followup.rep_id) == ("quoted", "rep2")


def test_applying_an_event_settles_the_state() -> None:
    state = run(order(day(0)), followup(day(0)), login(day(365)))
    assert state.orders == []
    assert state.followups == []
    assert state.paid_orders_total() == 1


# --------------------------------------------------------------------------------------------
# follow-ups, logins, profiles


def test_latest_follow_up_is_the_one_with_the_latest_event_time() -> None:
    state = run(followup(day(5), "quoted", rep="a"), followup(day(1), "won", rep="b"))
    assert state.latest_followup is not None
    assert (state.latest_followup.at, state.latest_followup.stage) == (day(5), "quoted")
    assert [f.at for f in state.followups] == [day(1), day(5)]


def test_latest_follow_up_ties_go_to_the_one_processed_last() -> None:
    state = run(followup(day(5), "quoted", rep="a"), followup(day(5), "lost", rep="b"))
    assert state.latest_followup is not None
    assert (state.latest_followup.stage, state.latest_followup.rep_id) == ("lost", "b")


def test_a_follow_up_is_counted_once_even_after_the_dedup_ring_forgot_it() -> None:
    first = followup(day(0), event_id="f-1")
    state = run(first, *[login(day(1)) for _ in range(RECENT_EVENT_IDS + 1)])
    assert short_hash("f-1") not in state.recent_event_ids
    assert apply_event(state, first, day(1)) is Outcome.DUPLICATE
    assert len(state.followups) == 1


def test_follow_ups_and_profiles_are_not_activity() -> None:
    state = run(followup(day(0)), profile(day(1), owner_rep="r"))
    assert state.last_activity_at is None


def test_last_activity_is_the_latest_login_or_order() -> None:
    state = run(login(day(3)), order(day(7)), login(day(5)))
    assert state.last_activity_at == day(7)


def test_a_profile_upsert_sets_and_clears_only_the_fields_it_carries() -> None:
    state = run(
        profile(day(0), owner_rep="rep1", source_channel="store", birthday="02-29", registered_at=day(-9)),
        profile(day(1), owner_rep=None),
    )
    assert state.owner_rep is None
    assert (state.source_channel, state.birthday, state.registered_at) == ("store", "02-29", day(-9))


def test_phone_and_email_are_kept_only_as_present_flags() -> None:
    state = run(profile(day(0), phone="13800138000", email="a@b.cn"))
    assert (state.has_phone, state.has_email) == (True, True)
    assert "13800138000" not in repr(state)
    assert "a@b.cn" not in repr(state)
    state = run(profile(day(0), phone="13800138000", email="a@b.cn"), profile(day(1), phone=None))
    assert (state.has_phone, state.has_email) == (False, True)


# --------------------------------------------------------------------------------------------
# duplicates


def test_the_same_event_id_is_applied_once() -> None:
    event = login(day(0), event_id="same")
    state = CustomerState("c1")
    assert apply_event(state, event, day(0)) is Outcome.APPLIED
    assert apply_event(state, event, day(0)) is Outcome.DUPLICATE
    assert state.recent_event_ids == [short_hash("same")]


def test_the_dedup_ring_holds_the_last_16_event_ids() -> None:
    state = run(*[login(day(i), event_id=f"l{i}") for i in range(RECENT_EVENT_IDS + 4)])
    assert len(state.recent_event_ids) == RECENT_EVENT_IDS
    assert state.recent_event_ids[0] == short_hash("l4")
    assert state.recent_event_ids[-1] == short_hash(f"l{RECENT_EVENT_IDS + 3}")


def test_a_rejected_event_is_not_remembered() -> None:
    state = CustomerState("c1")
    rejection(state, refund("nope", day(0), event_id="r"), day(0))
    assert state.recent_event_ids == []


def test_short_hash_is_a_stable_63_bit_fingerprint() -> None:
    assert short_hash("o1") == short_hash("o1")
    assert short_hash("o1") != short_hash("o2")
    assert 0 <= short_hash("x" * 128) < 2**63
