"""Tag validity periods (SPEC section 9): a tag with ``valid_for`` is held at most that long.

At ``since + valid_for`` the tag is removed by a timer with ``reason.expired``; in an exclusive
dimension the next tag whose condition holds takes its place in the same change; and the tag is
not entered again until its condition has stopped holding at least once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rules.catalog import Catalog, parse_catalog
from rules.engine import CATALOG, EVENT, EXPIRED, TIMER, fire_deadlines, next_deadline, process_event, reevaluate
from state.codec import decode_state, encode_state
from state.customer import CustomerState
from state.times import DAY
from tests.builders import Customer, day, default_catalog, generated, login, moves, order, replay

US = 1

VALIDITY = """\
catalog: validity
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
        tasks:
          - title: {en: Send the welcome offer}
            assignee: owner
      regular:
        name: {en: Regular offer}
        definition: {en: At least one paid order.}
        when: paid_orders_total >= 1
  mail:
    exclusive: false
    name: {en: Mail}
    tags:
      welcome_mail:
        name: {en: Welcome mail}
        definition: {en: Holds the welcome offer.}
        when: offer == "welcome"
  perks:
    exclusive: false
    name: {en: Perks}
    tags:
      big_spender:
        name: {en: Big spender}
        definition: {en: Spent more than 1000 over 30 days; for 10 days at most.}
        when: spend(30d) > 1000
        valid_for: 10d
"""


def catalog(text: str = VALIDITY) -> Catalog:
    return parse_catalog(text.encode(), "validity.yaml")


def run(*events: object, until: int) -> Customer:
    """One customer through the engine, then its deadlines fired up to ``until``."""
    customer = Customer(*events, catalog=catalog())  # type: ignore[arg-type]
    customer.results.append(fire_deadlines(customer.catalog, customer.state, until))
    return customer


# --------------------------------------------------------------------------------------------
# expiry


def test_a_tag_with_valid_for_expires_at_since_plus_valid_for() -> None:
    customer = Customer(login(day(0)), catalog=catalog())
    assert customer.state.tags["welcome"].since == day(0)
    assert customer.state.next_deadline == day(7)
    assert customer.tag_at("offer", day(7) - US) == "welcome"
    assert customer.tag_at("offer", day(7)) is None
    assert fire_deadlines(customer.catalog, customer.state, day(7) - US).changes == []
    (expiry, mail) = fire_deadlines(customer.catalog, customer.state, day(7)).changes
    assert (expiry.dimension, expiry.from_tag, expiry.to_tag, expiry.effective_at) == ("offer", "welcome", None, day(7))
    assert (mail.dimension, mail.from_tag, mail.to_tag, mail.effective_at) == ("mail", "welcome_mail", None, day(7))
    assert customer.state.tags == {}


def test_the_expiry_is_a_timer_change_whose_reason_says_expired() -> None:
    customer = run(login(day(0)), until=day(7))
    expiry = customer.changes[-2]
    assert expiry.trigger == TIMER
    assert expiry.event_id is None
    assert expiry.rule_id == "offer.welcome"
    assert expiry.reason == {EXPIRED: True, "days_since_last_activity": 7.0}
    assert expiry.catalog_version == customer.catalog.version


def test_in_an_exclusive_dimension_the_next_holding_tag_takes_the_expired_tags_place() -> None:
    customer = run(order(day(0), "100"), until=day(7))
    offer = [c for c in customer.changes if c.dimension == "offer"]
    assert moves(offer) == [(None, "welcome"), ("welcome", "regular")]
    replaced = offer[-1]
    assert (replaced.trigger, replaced.effective_at, replaced.rule_id) == (TIMER, day(7), "offer.regular")
    assert replaced.reason == {EXPIRED: True, "paid_orders_total": 1}
    assert customer.state.tags["regular"].since == day(7)


def test_a_dimension_that_reads_an_expired_tag_follows_it_at_the_same_moment() -> None:
    customer = run(login(day(0)), until=day(30))
    mail = [c for c in customer.changes if c.dimension == "mail"]
    assert moves(mail) == [(None, "welcome_mail"), ("welcome_mail", None)]
    assert (mail[-1].trigger, mail[-1].effective_at) == (TIMER, day(7))
    assert EXPIRED not in mail[-1].reason  # welcome_mail has no validity of its own: it simply stops holding


def test_a_non_exclusive_tag_expires_alone() -> None:
    customer = run(order(day(0), "1500"), until=day(10))
    perks = [c for c in customer.changes if c.dimension == "perks"]
    assert moves(perks) == [(None, "big_spender"), ("big_spender", None)]
    assert (perks[-1].trigger, perks[-1].effective_at) == (TIMER, day(10))
    assert perks[-1].reason == {EXPIRED: True, "spend_30d": 1500}


def test_the_next_deadline_is_the_expiry_when_it_comes_first() -> None:
    customer = Customer(order(day(0), "1500"), catalog=catalog())
    # welcome at day 7 comes first; then big_spender at day 10, before the order leaves spend(30d).
    assert next_deadline(customer.catalog, customer.state, day(0)) == day(7)
    assert next_deadline(customer.catalog, customer.state, day(7)) == day(10)
    assert next_deadline(customer.catalog, customer.state, day(10)) == day(30)


def test_an_event_after_the_expiry_fires_it_first_at_its_own_moment() -> None:
    customer = Customer(login(day(0)), login(day(9), event_id="later"), catalog=catalog())
    offer = [c for c in customer.changes if c.dimension == "offer"]
    assert [(c.from_tag, c.to_tag, c.trigger, c.effective_at) for c in offer] == [
        (None, "welcome", EVENT, day(0)),
        ("welcome", None, TIMER, day(7)),
    ]


def test_a_late_event_enters_a_tag_for_what_remains_of_its_validity() -> None:
    customer = Customer(login(day(20)), order(day(15), "1500", event_id="late"), catalog=catalog())
    assert customer.state.tags["big_spender"].since == day(15)
    assert customer.state.next_deadline == day(25)


def test_a_late_event_does_not_enter_a_tag_whose_validity_would_already_be_over() -> None:
    late = Customer(login(day(20)), order(day(5), "1500", event_id="late"), catalog=catalog())
    assert moves(late.changes, "perks") == []
    on_time = Customer(order(day(5), "1500", event_id="late"), catalog=catalog())
    on_time.send(login(day(20)))
    # Left as on-time processing leaves it: expired, awaiting a new qualification.
    assert "big_spender" in late.state.expired and "big_spender" in on_time.state.expired
    assert "big_spender" not in late.state.tags and "big_spender" not in on_time.state.tags
    late.send(order(day(22), "100"))
    assert moves(late.changes, "perks") == []


# --------------------------------------------------------------------------------------------
# a new qualification


def test_an_expired_tag_is_not_entered_again_while_its_condition_keeps_holding() -> None:
    events = [login(day(0))]
    events += [login(day(n)) for n in range(8, 200, 5)]  # active all along
    events += [order(day(n), "2000") for n in range(20, 200, 45)]  # other dimensions move meanwhile
    customer = run(*sorted(events, key=lambda e: e.occurred_at), until=day(220))
    assert moves(customer.changes, "offer") == [(None, "welcome"), ("welcome", None), (None, "regular")]
    assert customer.state.expired == {"welcome"}
    assert customer.tag_at("offer", day(220)) == "regular"
    timers = [c for c in customer.changes if c.trigger == TIMER]
    assert len(timers) > 3  # deadlines came and went without bringing welcome back


def test_an_expired_tag_is_entered_again_after_its_condition_stopped_holding() -> None:
    customer = run(login(day(0)), login(day(20)), login(day(60), event_id="back"), until=day(100))
    offer = [c for c in customer.changes if c.dimension == "offer"]
    assert [(c.from_tag, c.to_tag, c.trigger, c.effective_at) for c in offer] == [
        (None, "welcome", EVENT, day(0)),
        ("welcome", None, TIMER, day(7)),
        # day 50: 30 days without activity, the condition is false: a new qualification may start
        (None, "welcome", EVENT, day(60)),
        ("welcome", None, TIMER, day(67)),
    ]
    assert offer[2].event_id == "back"
    assert customer.state.expired == set()  # false again since day 90


def test_the_expired_set_is_cleared_at_the_deadline_where_the_condition_turns_false() -> None:
    customer = run(login(day(0)), login(day(20)), until=day(50) - US)
    assert customer.state.expired == {"welcome"}
    fire_deadlines(customer.catalog, customer.state, day(50))
    assert customer.state.expired == set()


def test_a_tag_whose_condition_ends_with_its_validity_may_be_entered_at_the_next_qualification() -> None:
    text = VALIDITY.replace("valid_for: 7d", "valid_for: 30d")
    customer = Customer(login(day(0)), catalog=catalog(text))
    fire_deadlines(customer.catalog, customer.state, day(30))
    expiry = customer.state.seq
    assert customer.state.expired == set()  # already false at the moment it expired
    customer.send(login(day(31)))
    assert customer.state.tags["welcome"].seq > expiry


def test_a_non_exclusive_tag_comes_back_only_after_its_condition_stopped_holding() -> None:
    customer = run(order(day(0), "1500"), order(day(15), "1500"), order(day(50), "1500"), until=day(70))
    perks = [c for c in customer.changes if c.dimension == "perks"]
    # spend(30d) stays above 1000 until day 45 (the day-15 order leaves the window)
    assert [(c.from_tag, c.to_tag, c.effective_at) for c in perks] == [
        (None, "big_spender", day(0)),
        ("big_spender", None, day(10)),
        (None, "big_spender", day(50)),
        ("big_spender", None, day(60)),
    ]


# --------------------------------------------------------------------------------------------
# catalog changes


def test_a_catalog_that_drops_valid_for_lets_the_expired_tag_back_at_once() -> None:
    customer = run(login(day(0)), login(day(8)), until=day(9))
    assert customer.state.expired == {"welcome"}
    unlimited = catalog(VALIDITY.replace("        valid_for: 7d\n", ""))
    result = reevaluate(unlimited, customer.state, day(9))
    assert [(c.dimension, c.from_tag, c.to_tag, c.trigger) for c in result.changes] == [
        ("offer", None, "welcome", CATALOG),
        ("mail", None, "welcome_mail", CATALOG),
    ]
    assert customer.state.expired == set()


def test_a_catalog_without_the_tag_forgets_that_it_expired() -> None:
    customer = run(login(day(0)), login(day(8)), until=day(9))
    without = catalog(VALIDITY.replace("welcome:", "hello:").replace('offer == "welcome"', 'offer == "hello"'))
    reevaluate(without, customer.state, day(9))
    assert customer.state.expired == set()


def test_a_catalog_that_shortens_valid_for_below_the_time_held_removes_the_tag_when_it_arrives() -> None:
    customer = Customer(login(day(0)), catalog=catalog())
    shorter = catalog(VALIDITY.replace("valid_for: 7d", "valid_for: 2d"))
    result = reevaluate(shorter, customer.state, day(3))
    expiry = result.changes[0]
    assert (expiry.from_tag, expiry.to_tag, expiry.trigger, expiry.effective_at) == ("welcome", None, CATALOG, day(3))
    assert expiry.reason[EXPIRED] is True


# --------------------------------------------------------------------------------------------
# state and replay


def test_the_expired_set_survives_an_encode_decode_round_trip_mid_history() -> None:
    events = [login(day(0)), login(day(8)), login(day(20)), login(day(60)), order(day(61))]
    straight = run(*events, until=day(90))
    resumed = Customer(*events[:2], catalog=catalog())
    assert resumed.state.expired == {"welcome"}
    resumed.state = decode_state(encode_state(resumed.state))
    for event in events[2:]:
        resumed.send(event)
    resumed.results.append(fire_deadlines(resumed.catalog, resumed.state, day(90)))
    assert resumed.changes == straight.changes
    assert resumed.state == straight.state


def test_replay_expires_tags_in_event_time_like_the_engine_does_customer_by_customer() -> None:
    histories = {
        "a": [login(day(0), customer="a"), login(day(20), customer="a"), login(day(60), customer="a")],
        "b": [order(day(1), "1500", customer="b"), order(day(15), "1500", customer="b")],
        "c": [login(day(3), customer="c"), order(day(5), "2000", customer="c")],
    }
    interleaved = sorted((e for h in histories.values() for e in h), key=lambda e: e.occurred_at)
    _, changes = replay(*interleaved, until=day(100), catalog=catalog())
    for customer_id, events in histories.items():
        alone = Customer(*events, catalog=catalog(), customer_id=customer_id)
        alone.results.append(fire_deadlines(alone.catalog, alone.state, day(100)))
        assert [c for c in changes if c.customer_id == customer_id] == alone.changes
    expiries = [c for c in changes if c.reason.get(EXPIRED)]
    assert {(c.customer_id, c.effective_at) for c in expiries} >= {("a", day(7)), ("b", day(11)), ("c", day(10))}


@pytest.mark.parametrize("late_by_up_to", [0, 25 * DAY], ids=["on-time", "late"])
def test_deciding_only_what_an_event_can_move_stays_exact_with_validity_periods(late_by_up_to: int) -> None:
    text = default_catalog_text()
    for when, valid_for in LIMITS:
        assert when in text
        text = text.replace(when, f"{when}\n        valid_for: {valid_for}")
    limited = parse_catalog(text.encode(), "limited.yaml")
    full = dataclasses.replace(limited, moved_by={})  # no shortcut: every dimension, every time
    shortcut_states: dict[str, CustomerState] = {}
    full_states: dict[str, CustomerState] = {}
    clocks: dict[str, int] = {}
    for n, event in enumerate(generated(10_000, 1_000, day(400))):
        # Processed a while after it happened, some events long after (longer than some validities).
        late = (n * 7919) % 1000 * late_by_up_to // 1000
        at = clocks[event.customer_id] = max(clocks.get(event.customer_id, 0), event.occurred_at + DAY // 3 + late)
        a = shortcut_states.setdefault(event.customer_id, CustomerState(event.customer_id))
        b = full_states.setdefault(event.customer_id, CustomerState(event.customer_id))
        assert process_event(limited, a, event, at) == process_event(full, b, event, at)
        assert a == b
        for tag, held in a.tags.items():  # every expiry still ahead, and a deadline no later than it
            valid_for = limited.tags[tag].valid_for
            if valid_for is not None:
                assert a.next_deadline is not None and at < a.next_deadline <= held.since + valid_for, tag
    assert any(s.expired for s in full_states.values())
    assert any(len(s.tags) >= 4 for s in full_states.values())


LIMITS = [
    ("when: age(last_activity) < 30d", "20d"),
    ("when: spend(180d) > 5000 and paid_orders(180d) > 3", "45d"),
    ("when: paid_orders(90d) >= 3 and discounted_orders(90d) >= 0.6 * paid_orders(90d)", "15d"),
    ('when: latest_stage in ["proposal", "quoted", "negotiating"]', "10d"),
]


def default_catalog_text() -> str:
    return Path(default_catalog().source).read_text(encoding="utf-8")
