"""The demo generator gives every chart of the cockpit something to show (issue 10): every customer
names a source channel, customers stay at every lifecycle stage, and follow-ups move deals through
every step of the deal funnel."""

from __future__ import annotations

from collections import Counter

from connectors.generator import CHANNELS, demo_events
from rules.catalog import load_default_catalog
from rules.engine import process_event
from state.customer import CustomerState
from state.events import InvalidEvent, parse_event
from state.times import DAY, SECOND

NOW = 1_790_000_000 * SECOND


def replayed(count: int, customers: int) -> dict[str, CustomerState]:
    """The customers after ``count`` demo events, spread over 60 days, through the engine."""
    catalog = load_default_catalog()
    states: dict[str, CustomerState] = {}
    start = NOW - 60 * DAY
    for record in _first(demo_events(customers, seed=5, start=start, step=60 * DAY // count, broken=0.0), count):
        try:
            event = parse_event(record.topic, record.value, NOW)
        except InvalidEvent:
            continue
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        process_event(catalog, state, event, event.occurred_at)  # a rejected refund changes nothing
    return states


def _first(records, count):  # type: ignore[no-untyped-def]
    for index, record in enumerate(records):
        if index == count:
            return
        yield record


def test_every_customer_names_a_source_channel_with_its_first_event() -> None:
    first: dict[bytes, str] = {}
    for record in _first(demo_events(50, seed=2, broken=0.0), 400):
        first.setdefault(record.key, record.topic)
    assert set(first.values()) == {"customers"}
    channels = Counter(state.source_channel for state in replayed(2_000, 100).values())
    assert set(channels) == set(CHANNELS)


def test_follow_ups_fill_every_step_of_the_deal_funnel() -> None:
    intent = Counter(tag for state in replayed(12_000, 200).values() for tag in state.tags
                     if tag in ("early", "high_intent", "won", "lost_deal"))
    assert set(intent) == {"early", "high_intent", "won", "lost_deal"}, intent
    assert intent["early"] > intent["won"], "a funnel narrows"



def test_customers_stay_at_every_lifecycle_stage() -> None:
    stages = Counter(tag for state in replayed(12_000, 200).values() for tag in state.tags
                     if tag in ("prospect", "new", "growing", "mature"))
    assert set(stages) == {"prospect", "new", "growing", "mature"}, stages
    assert stages["prospect"] >= 30, "a fifth of the customers never buy"
