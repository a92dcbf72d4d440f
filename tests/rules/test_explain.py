"""Explanations (SPEC section 9): why a customer holds each tag or not, agreeing with the engine."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

import rules.explain
from rules.catalog import parse_catalog
from rules.engine import decide_tags, fire_deadlines, process_event
from rules.explain import (
    Explanation,
    TagExplanation,
    UnknownLanguage,
    explain,
    format_value,
    to_json,
    to_text,
)
from rules.expr import Evaluated
from rules.facts import DURATION, NUMBER, STRING, TAGSET, TIME
from state.codec import encode_state
from state.customer import CustomerState
from state.times import DAY, HOUR, MINUTE
from tests.builders import Customer, day, default_catalog, followup, generated, item, login, order, refund


def tag(explanation: Explanation, name: str) -> TagExplanation:
    return next(t for d in explanation.dimensions for t in d.tags if t.tag == name)


def values(explained: TagExplanation) -> dict[str, str]:
    return {v.expression: v.value for v in explained.values}


# --------------------------------------------------------------------------------------------
# held tags: the values that made them true


def test_a_customer_who_just_entered_high_value_is_explained_holding_it_with_the_values_that_made_it() -> None:
    customer = Customer(*(order(day(n), "1500") for n in range(4)))
    entered = next(c for c in customer.changes if c.to_tag == "high_value")

    explained = tag(explain(default_catalog(), customer.state, day(3)), "high_value")

    assert explained.held and explained.holds and explained.since == entered.effective_at == day(3)
    assert values(explained) == {
        "spend(180d)": "6000.00",
        "spend(180d) > 5000": "true",
        "paid_orders(180d)": "4",
        "paid_orders(180d) > 3": "true",
    }
    assert explained.reason == entered.reason == {"spend_180d": 6000, "paid_orders_180d": 4}
    assert explained.failing == () and explained.shadowed_by is None


def test_names_and_definitions_come_in_the_language_asked_for() -> None:
    customer = Customer(order(day(0)))
    explained = tag(explain(default_catalog(), customer.state, day(0), "zh"), "new")
    assert (explained.name, explained.definition) == ("新客户", "首笔已支付订单在 30 天以内。")
    assert tag(explain(default_catalog(), customer.state, day(0)), "new").name == "New customer"


def test_an_unknown_language_lists_the_catalogs() -> None:
    with pytest.raises(UnknownLanguage, match="unknown language 'fr': the catalog has en, zh"):
        explain(default_catalog(), Customer(login(day(0))).state, day(0), "fr")


def test_a_text_missing_in_the_language_falls_back_to_the_first_language() -> None:
    catalog = default_catalog()
    rule = catalog.tags["new"]
    english_only = dataclasses.replace(rule, label={"en": "New customer"})
    lifecycle = catalog.dimensions[0]
    tags = tuple(english_only if t is rule else t for t in lifecycle.tags)
    patched = dataclasses.replace(
        catalog, dimensions=(dataclasses.replace(lifecycle, tags=tags), *catalog.dimensions[1:])
    )
    assert tag(explain(patched, Customer(order(day(0))).state, day(0), "zh"), "new").name == "New customer"


# --------------------------------------------------------------------------------------------
# tags not held: exactly the clauses that fail


def test_a_tag_not_held_lists_exactly_its_failing_clauses() -> None:
    # Three paid orders, one of them discounted: enough orders, too few discounted ones.
    customer = Customer(order(day(0), coupon=True), order(day(1)), order(day(2)))
    explained = tag(explain(default_catalog(), customer.state, day(2)), "price_sensitive")
    assert not explained.held and not explained.holds
    assert explained.failing == ("discounted_orders(90d) >= 0.6 * paid_orders(90d)",)
    assert not explained.any_of
    assert values(explained) == {
        "paid_orders(90d)": "3",
        "paid_orders(90d) >= 3": "true",
        "discounted_orders(90d)": "1",
        "0.6 * paid_orders(90d)": "1.8",
        "discounted_orders(90d) >= 0.6 * paid_orders(90d)": "false",
    }


def test_every_failing_clause_is_listed_not_only_the_first_the_engine_stopped_at() -> None:
    # Three orders in three days: too recent for "growing", and too many.
    customer = Customer(*(order(day(n)) for n in range(3)))
    explained = tag(explain(default_catalog(), customer.state, day(3)), "growing")
    assert explained.failing == ("age(first_paid_order) >= 30d", "paid_orders_total < 3")


def test_for_an_or_none_of_the_alternatives_held() -> None:
    customer = Customer(order(day(0), "100"))
    explained = tag(explain(default_catalog(), customer.state, day(0)), "potential_high_value")
    assert explained.any_of
    assert explained.failing == ("spend(180d) > 2000", "paid_orders(180d) >= 3")
    assert "none holds of spend(180d) > 2000; paid_orders(180d) >= 3" in to_text(
        explain(default_catalog(), customer.state, day(0)))


def test_a_condition_on_a_missing_fact_fails_with_the_fact_shown_as_null() -> None:
    explained = tag(explain(default_catalog(), Customer(login(day(0))).state, day(0)), "followup_overdue")
    assert values(explained)["latest_followup"] == "null"
    assert values(explained)["age(latest_followup)"] == "null"
    assert explained.failing == ('intent in ["early", "high_intent"]', "age(latest_followup) >= 30d")


# --------------------------------------------------------------------------------------------
# exclusive dimensions


def test_a_tag_that_holds_but_is_shadowed_by_an_earlier_tag_is_not_held_because_of_it() -> None:
    customer = Customer(*(order(day(n), "1500") for n in range(4)))
    explanation = explain(default_catalog(), customer.state, day(3))
    shadowed = tag(explanation, "potential_high_value")
    assert shadowed.holds and not shadowed.held
    assert shadowed.shadowed_by == "high_value" and shadowed.failing == ()
    assert tag(explanation, "standard").shadowed_by == "high_value"
    assert "its condition holds, but high_value comes first" in to_text(explanation)


def test_a_non_exclusive_tag_is_never_shadowed() -> None:
    customer = Customer(*(order(day(n), items=[item(new_product=True)]) for n in range(3)))
    explained = tag(explain(default_catalog(), customer.state, day(3)), "new_product_follower")
    assert explained.held and explained.shadowed_by is None


# --------------------------------------------------------------------------------------------
# validity periods (valid_for)

OFFERS = b"""
catalog: offers
dimensions:
  offer:
    exclusive: true
    name: {en: Offer}
    tags:
      welcome:
        name: {en: Welcome offer}
        definition: {en: Active over the last 30 days; offered for 7 days at most.}
        when: age(last_activity) < 30d
        valid_for: 7d
      regular:
        name: {en: Regular offer}
        definition: {en: Known.}
        when: last_activity != null
"""


def test_a_tag_with_valid_for_is_explained_with_its_expiry_as_its_next_change() -> None:
    customer = Customer(login(day(0)), login(day(3)), catalog=parse_catalog(OFFERS))
    welcome = tag(explain(customer.catalog, customer.state, day(3)), "welcome")
    assert welcome.held and welcome.since == day(0) and welcome.valid_for == 7 * DAY
    assert welcome.next_change == day(7)  # the expiry, though the condition holds until day 33


def test_an_expired_tag_whose_condition_still_holds_is_explained_as_expired_not_shadowed() -> None:
    customer = Customer(login(day(0)), login(day(10)), catalog=parse_catalog(OFFERS))
    explanation = explain(customer.catalog, customer.state, day(10))
    welcome = tag(explanation, "welcome")
    assert welcome.holds and not welcome.held and welcome.expired
    assert welcome.shadowed_by is None and welcome.failing == ()
    assert tag(explanation, "regular").held and tag(explanation, "regular").since == day(7)
    # Nothing brings it back by itself: its condition stops holding at day 40, and only new
    # activity after that can qualify the customer again.
    assert welcome.next_change is None
    assert "not held: it was held for its validity (valid for 7d)" in to_text(explanation)


# --------------------------------------------------------------------------------------------
# windows, money and times


def test_window_values_count_what_the_window_holds() -> None:
    customer = Customer(
        order(day(0), "900"),  # leaves the 180-day window at day 180
        order(day(100), "1200.5"),
        order(day(150), "2000"),
        refunded := order(day(160), "700"),
        refund(refunded, day(161)),
    )
    explanation = explain(default_catalog(), customer.state, day(200))
    explained = tag(explanation, "potential_high_value")
    assert values(explained)["spend(180d)"] == "3200.50"
    assert values(explained)["paid_orders(180d)"] == "2"
    assert explained.reason == {"spend_180d": 3200.5, "paid_orders_180d": 2}
    assert explained.held


def test_ages_and_times_are_shown_for_people() -> None:
    customer = Customer(login(day(0)))
    explained = tag(explain(default_catalog(), customer.state, day(37) + 4 * HOUR + 5 * MINUTE), "silent")
    assert values(explained)["last_activity"] == "2026-01-05T08:00:00Z"
    assert values(explained)["age(last_activity)"] == "37d 4h"


@pytest.mark.parametrize(
    ("kind", "value", "money", "shown"),
    [
        (NUMBER, Decimal("3200"), True, "3200.00"),
        (NUMBER, Decimal("0.125"), True, "0.13"),
        (NUMBER, 2, False, "2"),
        (NUMBER, Decimal("1") / Decimal("3"), False, "0.3333"),
        (DURATION, 37 * DAY + 4 * HOUR + 59 * MINUTE, False, "37d 4h"),
        (DURATION, -DAY, False, "-1d"),
        (TIME, day(0), False, "2026-01-05T08:00:00Z"),
        (STRING, "quoted", False, '"quoted"'),
        (TAGSET, frozenset({"b", "a"}), False, '["a", "b"]'),
        (TIME, None, False, "null"),
    ],
)
def test_values_are_formatted_for_people(kind: str, value: object, money: bool, shown: str) -> None:
    assert format_value(Evaluated("x", kind, value, "fact", money)) == shown


# --------------------------------------------------------------------------------------------
# when the answer next changes by itself


def test_the_next_change_is_when_the_answer_changes_not_when_it_could() -> None:
    # Five orders: high_value needs more than 3 within 180 days. The first order leaving the
    # window changes nothing; the second one leaving ends it.
    customer = Customer(*(order(day(n), "1500") for n in range(5)))
    explanation = explain(default_catalog(), customer.state, day(5))
    assert tag(explanation, "high_value").next_change == day(181)
    assert tag(explanation, "active").next_change == day(34)  # 30 days after the last order
    assert tag(explanation, "new").next_change == day(30)
    assert tag(explanation, "prospect").next_change is None
    assert explanation.next_deadline == customer.state.next_deadline == day(30)
    # What the engine then does, firing the customer's deadlines:
    fire_deadlines(customer.catalog, customer.state, day(181) - 1)
    assert "high_value" in customer.state.tags
    left = fire_deadlines(customer.catalog, customer.state, day(181)).changes
    assert [(c.from_tag, c.effective_at) for c in left if c.dimension == "value"] == [("high_value", day(181))]


def test_the_next_change_agrees_with_the_deadlines_the_engine_fires() -> None:
    customer = Customer(followup(day(0), "new_lead"), order(day(1), "3000"))
    explanation = explain(default_catalog(), customer.state, day(1))
    expected: dict[str, int] = {}
    state = customer.state
    while state.next_deadline is not None:
        moment = state.next_deadline
        for change in fire_deadlines(customer.catalog, state, moment).changes:
            for name in (change.from_tag, change.to_tag):
                if name is not None:
                    expected.setdefault(name, change.effective_at)
    assert {t.tag: t.next_change for d in explanation.dimensions for t in d.tags if t.next_change} == expected
    assert expected["lead_unattended"] == day(3)


def test_a_search_cut_short_says_where_it_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules.explain, "MAX_STEPS", 1)
    explanation = explain(default_catalog(), Customer(login(day(0))).state, day(0))
    assert explanation.horizon == day(90)  # active -> silent at day 30 was found; churn's 90d next
    assert tag(explanation, "silent").next_change == day(30)
    assert tag(explanation, "dormant").next_change is None
    assert "changes searched up to 2026-04-05T08:00:00Z only" in to_text(explanation)


# --------------------------------------------------------------------------------------------
# agreement with the engine, and no side effects


def test_a_due_deadline_is_explained_as_the_engine_will_have_fired_it() -> None:
    customer = Customer(login(day(0)))  # the timer has not fired day 30 yet: the state says active
    explanation = explain(default_catalog(), customer.state, day(31))
    assert "active" in customer.state.tags
    assert not tag(explanation, "active").held
    assert tag(explanation, "silent").held and tag(explanation, "silent").since == day(30)
    assert explanation.next_deadline == day(90)


def test_a_state_left_by_another_catalog_is_explained_as_this_catalog_decides_it() -> None:
    state = Customer(order(day(0))).state
    state.catalog_version = "an-older-catalog"
    del state.tags["new"]
    assert tag(explain(default_catalog(), state, day(1)), "new").held


def test_explaining_changes_nothing() -> None:
    customer = Customer(login(day(0)), order(day(1), "3000"), followup(day(2), "quoted"))
    before = encode_state(customer.state)
    explain(default_catalog(), customer.state, day(400))
    assert encode_state(customer.state) == before


def test_held_and_holds_agree_with_the_engine_on_generated_customers() -> None:
    catalog = default_catalog()
    states: dict[str, CustomerState] = {}
    now = 0
    for event in generated(4_000, 150, until=day(300)):
        now = max(now, event.occurred_at)
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        process_event(catalog, state, event, now)
    for state in states.values():
        explanation = explain(catalog, state, now)
        fire_deadlines(catalog, state, now)  # what the explanation does to its copy
        decided, ctx = decide_tags(catalog, state, now)
        for dimension in explanation.dimensions:
            for explained in dimension.tags:
                rule = catalog.tags[explained.tag]
                value = decided[dimension.dimension]
                chosen = explained.tag in value if isinstance(value, frozenset) else explained.tag == value
                assert explained.held == chosen == (explained.tag in state.tags), (state.customer_id, explained.tag)
                assert explained.holds == rule.condition(ctx)
                assert explained.reason == rule.condition.reason(ctx)


def test_the_json_document_carries_every_tag_of_the_catalog() -> None:
    customer = Customer(*(order(day(n), "1500") for n in range(4)))
    document = to_json(explain(default_catalog(), customer.state, day(3)))
    assert document["at"] == "2026-01-08T08:00:00Z"
    assert document["catalog"] == {"name": "default", "version": default_catalog().version}
    tags = {t["tag"]: t for d in document["dimensions"] for t in d["tags"]}  # type: ignore[attr-defined]
    assert set(tags) == set(default_catalog().tags)
    assert tags["high_value"] == {
        "tag": "high_value",
        "rule_id": "value.high_value",
        "name": "High-value customer",
        "definition": "Spent more than 5000 and placed more than 3 paid orders over the last 180 days.",
        "held": True,
        "since": "2026-01-08T08:00:00Z",
        "condition": "spend(180d) > 5000 and paid_orders(180d) > 3",
        "holds": True,
        "values": {"spend(180d)": "6000.00", "spend(180d) > 5000": "true",
                   "paid_orders(180d)": "4", "paid_orders(180d) > 3": "true"},
        "failing": [],
        "any_of": False,
        "shadowed_by": None,
        "expired": False,
        "valid_for": None,
        "reason": {"spend_180d": 6000, "paid_orders_180d": 4},
        "next_change": "2026-07-04T08:00:00Z",
    }
