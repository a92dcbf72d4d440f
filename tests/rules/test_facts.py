"""The vocabulary's promise to the engine: a fact changes only with the kinds of event it names.

The engine re-decides, after an event, only the dimensions whose conditions read a fact or window
that kind of event can change (``Catalog.moved_by``). These tests hold every fact to its
``changed_by`` on a large generated history, and hold the shortcut to a full evaluation.
"""

from __future__ import annotations

import dataclasses

from rules.engine import process_event
from rules.facts import FACTS, WINDOWS, deadline_windows, in_window
from state.customer import CustomerState, RejectedEvent, apply_event
from state.times import DAY
from tests.builders import day, default_catalog, generated

NOW = day(400)


def values(state: CustomerState, now: int) -> dict[str, object]:
    facts = {name: fact.get(state) for name, fact in FACTS.items()}
    for name, window in WINDOWS.items():
        for length in (DAY, 30 * DAY, 365 * DAY):
            facts[f"{name}({length})"] = window.value(in_window(window.elements(state), now, length))
    return facts


def test_every_fact_changes_only_with_the_kinds_of_event_it_names() -> None:
    states: dict[str, CustomerState] = {}
    for event in generated(20_000, 300, NOW):
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        now = event.occurred_at
        before = values(state, now)
        try:
            apply_event(state, event, now)
        except RejectedEvent:  # changes nothing
            continue
        after = values(state, now)
        for name in before:
            kinds = (FACTS[name] if name in FACTS else WINDOWS[name.split("(")[0]]).changed_by
            if type(event) not in kinds:
                assert before[name] == after[name], (name, type(event).__name__)


def test_deciding_only_what_an_event_can_move_gives_exactly_the_full_evaluation() -> None:
    catalog = default_catalog()
    full = dataclasses.replace(catalog, moved_by={})  # no shortcut: every dimension, every time
    shortcut_states: dict[str, CustomerState] = {}
    full_states: dict[str, CustomerState] = {}
    for event in generated(20_000, 2_000, NOW):  # ten events a customer over 300 days: long silences
        now = event.occurred_at + DAY // 3  # processed a while after it happened
        a = shortcut_states.setdefault(event.customer_id, CustomerState(event.customer_id))
        b = full_states.setdefault(event.customer_id, CustomerState(event.customer_id))
        assert process_event(catalog, a, event, now) == process_event(full, b, event, now)
        assert a == b
    assert any(len(s.tags) >= 4 for s in full_states.values())


def test_a_window_within_another_counts_only_elements_of_that_one() -> None:
    """``Window.within`` lets the deadline computation skip a window (rules/facts.py,
    ``deadline_windows``): it must hold on real customers, and name a window within none."""
    states: dict[str, CustomerState] = {}
    for event in generated(5_000, 300, NOW):
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        try:
            apply_event(state, event, event.occurred_at)
        except RejectedEvent:
            continue
        for window in WINDOWS.values():
            if window.within is not None:
                wider = WINDOWS[window.within]
                assert wider.within is None
                assert all(any(item is other for other in wider.elements(state)) for item in window.elements(state))
    assert any(WINDOWS["discounted_orders"].elements(s) for s in states.values())


def test_the_next_deadline_looks_at_each_window_it_needs() -> None:
    deadlines = dict(deadline_windows({("discounted_orders", 9), ("paid_orders", 9), ("new_product_orders", 5),
                                       ("spend", 7), ("followups", 9)}))
    assert deadlines == {
        WINDOWS["paid_orders"].elements: (7, 9),  # spend counts the same orders; discounted ones are among them
        WINDOWS["new_product_orders"].elements: (5,),  # no window of all paid orders of that length
        WINDOWS["followups"].elements: (9,),
    }
