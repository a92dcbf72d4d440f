"""The engine runs each condition as one generated Python function (``Condition.test``); the
explanation runs the tree's closures (``Condition.evaluate``). Both must always agree: these tests
compare them on many conditions, every kind of node, and many customers at many moments."""

from __future__ import annotations

import dataclasses
import itertools

from rules.expr import Context, Dimension, compile_condition
from state.customer import CustomerState, RejectedEvent, apply_event
from state.times import DAY
from tests.builders import day, default_catalog, generated

DIMENSIONS = {
    "lifecycle": Dimension(True, frozenset({"prospect", "new", "growing", "mature"})),
    "behavior": Dimension(False, frozenset({"price_sensitive", "new_product_follower"})),
    "intent": Dimension(True, frozenset({"early", "high_intent", "closing", "won", "lost"})),
}

CONDITIONS = [
    *(tag.condition.source for tag in default_catalog().tags.values()),
    "paid_orders_total * 2 - 1 >= 3 or not (spend(30d) / 2 > 100)",
    "-spend(90d) < -50 and spend(90d) / paid_orders(90d) > 20",
    "age(last_activity) > 10d or age(latest_followup) <= 2 * 7d",
    "first_paid_order < last_activity and registered_at == null",
    "latest_stage not in [\"won\", \"lost\"] and latest_rep != owner_rep",
    "source_channel == \"app\" or owner_rep == null",
    "\"price_sensitive\" in behavior and lifecycle != \"new\"",
    "\"new_product_follower\" not in behavior or lifecycle == null",
    "weekday(last_activity) in [6, 7] and hour(last_activity) >= 8",
    "hour(latest_followup) not in [0, 1, 2] or weekday(first_paid_order) == 1",
    "days_to_birthday <= 7 or days_to_birthday * 2 > 400",
    "has_phone and not has_email or has_email == false",
    "logins(30d, \"app\") >= 2 and logins(60d) > logins(30d, \"app\")",
    "followups(14d) / followups(90d) > 0.5 or new_product_orders(365d) >= discounted_orders(365d)",
    "spend(180d) / 0 > 1 or (paid_orders(7d) + 1) * 1.5 >= 3",
    "true and not has_phone or null == birthday and false != has_email",
]


def customers() -> list[CustomerState]:
    states: dict[str, CustomerState] = {}
    for event in generated(6_000, 400, day(300)):
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        try:
            apply_event(state, event, event.occurred_at)
        except RejectedEvent:
            continue
    found = list(states.values())
    # Facts the demo events leave empty: a birthday (29 February too), a phone, an e-mail.
    birthdays = itertools.cycle(["01-05", "02-29", "12-31", None])
    return found + [
        dataclasses.replace(state, birthday=next(birthdays), has_phone=index % 2 == 0, has_email=index % 3 == 0,
                            registered_at=state.last_activity_at)
        for index, state in enumerate(found)
    ]


def test_the_generated_function_agrees_with_the_closures() -> None:
    conditions = [compile_condition(source, DIMENSIONS) for source in CONDITIONS]
    tag_choices = [{}, {"lifecycle": "mature", "behavior": frozenset({"price_sensitive"}), "intent": "early"},
                   {"lifecycle": "new", "behavior": frozenset({"new_product_follower"}), "intent": "won"}]
    outcomes = set()
    for state, now, tags in itertools.product(customers(), (day(200), day(300) + DAY // 2, day(500)), tag_choices):
        for condition in conditions:
            # Separate contexts: neither run can lean on values the other put in the cache.
            expected = condition.evaluate(Context(state, now, tags)) is True
            assert condition.test(Context(state, now, tags)) is expected, (condition.source, state, now, tags)
            outcomes.add((condition.source, expected))
    one_sided = [source for source in CONDITIONS if len({seen for s, seen in outcomes if s == source}) < 2]
    assert not one_sided, "each condition seen both true and false"


def test_conditions_sharing_one_context_read_what_each_would_read_alone() -> None:
    # One evaluation caches facts, windows and the elements windows count (spend() and
    # paid_orders() list the same orders once): a value cached for one condition must be the
    # value another one would compute, never a neighbour's (logins(30d) beside logins(30d, "app")).
    sources = [*CONDITIONS, "logins(30d) >= 2", 'logins(30d, "web") >= 2']
    conditions = [compile_condition(source, DIMENSIONS) for source in sources]
    tags: dict[str, object] = {"lifecycle": "mature", "behavior": frozenset({"price_sensitive"}), "intent": "early"}
    for state, now in itertools.product(customers(), (day(200), day(500))):
        shared = Context(state, now, tags)
        for condition in conditions:
            alone = Context(state, now, tags)
            assert condition.test(shared) is condition.test(alone), (condition.source, state, now)
            assert condition.reason(shared) == condition.reason(alone), (condition.source, state, now)
