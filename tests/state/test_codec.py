"""Customer state <-> bytes (state/codec.py): exact round trips, compact encoding."""

from __future__ import annotations

import itertools
import random
import uuid
from decimal import Decimal

import orjson
import pytest

from connectors.generator import demo_events
from rules.catalog import load_default_catalog
from rules.engine import process_event
from state.codec import (
    FORMAT_VERSION,
    _Memo,
    decode_state,
    encode_state,
    peek_catalog_version,
    peek_deadline,
    peek_source_channel,
    peek_tags,
)
from state.customer import MAX_LOGINS, RECENT_EVENT_IDS, CustomerState, Login, TagState, apply_event
from state.events import Event, parse_event
from state.times import DAY, SECOND
from tests.builders import day, followup, login, order, profile, refund


def _uid(*parts: object) -> str:
    """A realistic (36-character) but deterministic id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(map(str, parts))))


def build(*events: Event, customer_id: str = "cust-0001234567") -> CustomerState:
    state = CustomerState(customer_id)
    now = events[0].occurred_at
    for event in events:
        now = max(now, event.occurred_at)
        apply_event(state, event, now)
    return state


def full_state() -> CustomerState:
    """Every field set to a non-default value."""
    state = build(
        order(day(0), "99.90", order_id="settled"),
        order(day(300), "1234.56", order_id="o1", coupon=True),
        order(day(310), "0.01", order_id="o2", new_product=True),
        order(day(320), "500", order_id="o3", coupon=True, new_product=True),
        refund("o3", day(321)),
        followup(day(330), "negotiating", rep="rep-42"),
        followup(day(370), "quoted", rep="rep-43"),
        login(day(400), channel="web"),
        profile(
            day(400),
            owner_rep="rep-1",
            source_channel="mini_program",
            registered_at=day(-30),
            birthday="12-31",
            phone="13800138000",
            email="x@y.cn",
        ),
    )
    state.tags = {
        "mature": TagState("lifecycle", day(30), 3),
        "active": TagState("activity", day(400), 9),
        "price_sensitive": TagState("behavior", day(320), 7),
        "high_intent": TagState("intent", day(370), 8),
    }
    state.expired = {"new_product_follower", "high_value"}
    state.seq = 9
    state.next_deadline = day(403)
    state.catalog_version = "9450b9dbd2a6a26a"
    return state


def test_a_fully_populated_state_round_trips() -> None:
    state = full_state()
    assert state.settled_paid == 1
    assert [o.refunded for o in state.orders] == [False, False, True]
    assert state.has_phone and state.has_email
    decoded = decode_state(encode_state(state))
    assert decoded == state
    assert encode_state(decoded) == encode_state(state)


def test_amounts_round_trip_exactly() -> None:
    state = build(order(day(0), "0.1"), order(day(1), "999999999999999.99"), order(day(2), "1E+3"))
    decoded = decode_state(encode_state(state))
    assert [o.amount for o in decoded.orders] == [
        Decimal("0.1"),
        Decimal("999999999999999.99"),
        Decimal(1000),
    ]
    assert [str(o.amount) for o in decoded.orders] == [str(o.amount) for o in state.orders]


def test_an_empty_state_round_trips_and_leaves_defaults_out() -> None:
    state = CustomerState("c1")
    data = encode_state(state)
    assert orjson.loads(data) == {"v": FORMAT_VERSION, "c": "c1", "s": 0}
    assert decode_state(data) == state


def test_a_prospect_known_by_a_profile_round_trips() -> None:
    state = build(profile(day(0), owner_rep=None, source_channel="web"))
    assert decode_state(encode_state(state)) == state


def test_phone_and_email_values_are_never_encoded() -> None:
    data = encode_state(full_state())
    assert b"13800138000" not in data
    assert b"x@y.cn" not in data


def test_expired_tags_awaiting_requalification_round_trip_as_a_sorted_list() -> None:
    state = CustomerState("c1", expired={"welcome", "high_value"})
    data = encode_state(state)
    assert orjson.loads(data)["x"] == ["high_value", "welcome"]
    assert decode_state(data) == state
    assert encode_state(decode_state(data)) == data


def test_a_state_written_before_validity_periods_decodes_with_no_expired_tags() -> None:
    old = b'{"v":1,"c":"c1","s":2,"t":{"active":["activity",5,2]},"nd":9}'
    state = decode_state(old)
    assert state.expired == set()
    assert state.tags == {"active": TagState("activity", 5, 2)}
    assert encode_state(state) == old


def test_an_unknown_format_version_is_refused() -> None:
    data = orjson.dumps({"v": FORMAT_VERSION + 1, "c": "c1", "s": 0})
    with pytest.raises(ValueError, match="unknown customer state format"):
        decode_state(data)


def _events_of_a_typical_customer() -> list[Event]:
    events: list[Event] = []
    for index in range(5):
        events.append(
            order(
                day(20 * index),
                f"{100 + 37 * index}.{index}9",
                order_id=_uid("o", index),
                event_id=_uid("oe", index),
            )
        )
    for index in range(10):
        events.append(login(day(7 * index + 3), event_id=_uid("l", index)))
    events.append(followup(day(50), "contacted", rep="rep-00017", event_id=_uid("f", 1)))
    events.append(followup(day(60), "proposal", rep="rep-00017", event_id=_uid("f", 2)))
    events.append(profile(day(1), owner_rep="rep-00017", source_channel="app", event_id=_uid("p", 1)))
    return events


def typical_customer() -> CustomerState:
    """5 orders, 10 logins, 2 follow-ups, a full dedup ring, 4 tags."""
    state = build(*sorted(_events_of_a_typical_customer(), key=lambda e: e.occurred_at))
    assert len(state.orders) == 5
    assert len(state.followups) == 2
    assert len(state.recent_event_ids) == RECENT_EVENT_IDS
    state.tags = {
        "mature": TagState("lifecycle", day(80), 5),
        "active": TagState("activity", day(0), 2),
        "potential_high_value": TagState("value", day(40), 4),
        "high_intent": TagState("intent", day(60), 6),
    }
    state.seq = 6
    state.next_deadline = day(93)
    state.catalog_version = "9450b9dbd2a6a26a"
    return state


def heavy_customer() -> CustomerState:
    """A year of activity: an order every 2 days, a follow-up a day, 12 tags."""
    events: list[Event] = []
    for index in range(182):
        events.append(
            order(
                day(2 * index),
                "12345.67",
                order_id=_uid("heavy", index),
                coupon=index % 2 == 0,
                new_product=True,
            )
        )
    events += [followup(day(index), "negotiating", rep="rep-00017") for index in range(364)]
    events.append(
        profile(
            day(0),
            owner_rep="rep-00017",
            source_channel="store",
            registered_at=day(-400),
            birthday="01-31",
            phone="13800138000",
            email="someone@example.com",
        )
    )
    state = build(*sorted(events, key=lambda e: e.occurred_at))
    state.tags = {f"tag_{index:02d}": TagState(f"dimension_{index}", day(index), index) for index in range(12)}
    state.seq = 12_345
    state.next_deadline = day(365)
    state.catalog_version = "9450b9dbd2a6a26a"
    return state


def test_a_typical_customer_encodes_to_less_than_1_kib() -> None:
    state = typical_customer()
    data = encode_state(state)
    print(f"typical customer state: {len(data)} bytes")
    assert len(data) < 1024
    assert decode_state(data) == state


def test_a_heavy_customer_stays_bounded_and_round_trips() -> None:
    state = heavy_customer()
    assert len(state.orders) == 182
    assert len(state.followups) == 364
    data = encode_state(state)
    print(f"heavy customer state: {len(data)} bytes")
    assert len(data) < 32 * 1024
    assert decode_state(data) == state


def test_logins_round_trip_with_their_channels_and_exact_times() -> None:
    state = CustomerState("c1")
    state.logins = [
        Login(1, day(1), "app"),
        Login(2, day(2) + 1, None),  # a microsecond: times are stored exactly, not in seconds
        Login(3, day(3), "web"),
    ]
    assert decode_state(encode_state(state)) == state
    state.logins = [Login(4, day(1), None), Login(5, day(2), None)]  # no channel: none stored
    assert decode_state(encode_state(state)) == state
    for single in (Login(6, day(1), None), Login(7, day(1) + 1, None), Login(8, day(1), "app")):
        state.logins = [single]
        assert decode_state(encode_state(state)) == state
    state.logins = [Login(6, day(1), None)]
    assert orjson.loads(encode_state(state))["l"] == ["AAAAAAAG", SECOND, [day(1) // SECOND]]


def test_a_state_written_before_login_windows_decodes_with_no_logins() -> None:
    old = orjson.dumps({"v": FORMAT_VERSION, "c": "c1", "s": 3, "la": day(5)})
    state = decode_state(old)
    assert state.logins == [] and state.last_activity_at == day(5)


def test_a_customer_with_the_most_logins_kept_stays_bounded() -> None:
    state = build(*(login(day(0) + index * 8 * 3600 * 1_000_000) for index in range(1200)))
    assert len(state.logins) == MAX_LOGINS
    data = encode_state(state)
    print(f"customer with {MAX_LOGINS} logins: {len(data)} bytes")
    assert len(data) < 24 * 1024
    assert decode_state(data) == state


# Bytes written by the first implementation of format 1 (stored changelogs hold such records):
# they must decode to the same state and encode back to the very same bytes.
V1_RECORDS = (
    b'{"v":1,"c":"cust-0001234567","s":9,"o":[[254722267873366,1793520000000000,"1234.56",1],'
    b'[157165794572980,1794384000000000,"0.01",2],[73236150563369,1795248000000000,"500",7]],"sp":1,'
    b'"sf":1767600000000000,"f":[[189203455214537,1796112000000000],[215147098673104,1799568000000000]],'
    b'"lf":[1799568000000000,"quoted","rep-43"],"l":["s1vZsjkZ",1000000,[1802160000],["web"],[1]],'
    b'"la":1802160000000000,"or":"rep-1","sc":"mini_program","ra":1765008000000000,"bd":"12-31","hp":1,'
    b'"he":1,"t":{"mature":["lifecycle",1770192000000000,3],"active":["activity",1802160000000000,9],'
    b'"price_sensitive":["behavior",1795248000000000,7],"high_intent":["intent",1799568000000000,8]},'
    b'"x":["high_value","new_product_follower"],'
    b'"r":"/LMgnF0JZ5Q9BnIhUGRihoKy6Ivd9nJoWDSE5wH4rBRcvQPJw6zWZA/Qs1vZsjkZIdHAYTIR",'
    b'"nd":1802419200000000,"cv":"9450b9dbd2a6a26a"}',
    b'{"v":1,"c":"c1","s":0,"l":["AAAAAAABAAAAAAACAAAAAAAD",1,[1767686400000000,86400000001,86399999999],'
    b'["app","web"],[1,0,2]],"r":"AAAAAAAB////////AAAAAAAD"}',
)


def test_records_of_the_first_format_1_writer_decode_and_encode_back_byte_for_byte() -> None:
    state, expected = decode_state(V1_RECORDS[0]), full_state()  # equal but for the event-id keys
    assert [(o.at, o.amount, o.discounted, o.new_product, o.refunded) for o in state.orders] == [
        (o.at, o.amount, o.discounted, o.new_product, o.refunded) for o in expected.orders
    ]
    assert (state.tags, state.expired, state.latest_followup) == (expected.tags, expected.expired,
                                                                  expected.latest_followup)
    assert [(login.at, login.channel) for login in state.logins] == [(day(400), "web")]
    assert len(state.recent_event_ids) == len(expected.recent_event_ids) == 9
    state = decode_state(V1_RECORDS[1])
    assert state.logins == [Login(1, day(1), "app"), Login(2, day(2) + 1, None), Login(3, day(3), "web")]
    assert state.recent_event_ids == [1, 2**48 - 1, 3]
    for data in V1_RECORDS:
        assert encode_state(decode_state(data)) == data


def test_the_states_of_generated_customers_round_trip() -> None:
    """Realistic states: generated events (a year, in random order, duplicates and refunds
    included) folded through the engine with the default catalog."""
    catalog = load_default_catalog()
    records = list(itertools.islice(demo_events(300, seed=5, history=365 * DAY, broken=0), 6000))
    random.Random(5).shuffle(records)
    now = max(parse_event(r.topic, r.value, 1 << 62).occurred_at for r in records)
    states: dict[str, CustomerState] = {}
    for r in records:
        event = parse_event(r.topic, r.value, now)
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        process_event(catalog, state, event, now)
    assert sum(1 for s in states.values() if s.logins and s.orders and s.tags) > 100
    for state in states.values():
        data = encode_state(state)
        assert decode_state(data) == state
        assert encode_state(decode_state(data)) == data
        assert peek_deadline(data) == state.next_deadline
        assert peek_tags(data) == list(state.tags)
        assert peek_source_channel(data) == state.source_channel
        assert peek_catalog_version(data) == state.catalog_version


def test_long_login_lists_are_encoded_anew_whenever_they_change() -> None:
    """Long login lists are encoded once and reused while the state holds the same logins: any
    change to the list (a login added in order or out of order, the oldest dropped, the list
    rebuilt, equal logins decoded afresh) must show in the bytes at once."""
    rng = random.Random(17)
    state = CustomerState("bot-1")
    state.logins = [Login(rng.getrandbits(48), day(0) + n * SECOND, "app") for n in range(40)]
    for _ in range(400):
        action = rng.randrange(5)
        if action == 0:  # a new login, newest
            state.logins.append(Login(rng.getrandbits(48), state.logins[-1].at + SECOND, rng.choice([None, "web"])))
        elif action == 1:  # a late one, inserted in order
            at = state.logins[0].at + rng.randrange(state.logins[-1].at - state.logins[0].at)
            index = next(i for i, login in enumerate(state.logins) if login.at > at)
            state.logins.insert(index, Login(rng.getrandbits(48), at, "app"))
        elif action == 2 and len(state.logins) > 20:  # the oldest dropped
            del state.logins[0]
        elif action == 3:  # retention: a new list of the same objects, maybe fewer
            state.logins = state.logins[rng.randrange(2):]
        data = encode_state(state)
        assert decode_state(data) == state
        if action == 4:  # the same logins as new objects: same bytes
            state = decode_state(data)
            assert encode_state(state) == data


def test_the_login_memo_keeps_to_its_budget() -> None:
    memo, encoded = _Memo(budget=100), orjson.Fragment(b"[]")
    for n in range(10):
        logins = [Login(k, k, None) for k in range(30)]
        memo.put(f"c{n}", logins, encoded)
        assert memo.size <= 100
        assert memo.get(f"c{n}", logins) is encoded
        assert memo.get(f"c{n}", logins[:-1]) is None
        assert memo.get(f"c{n}", [*logins[:-1], Login(29, 29, None)]) is None  # equal is not the same
    assert memo.get("c0", logins) is None  # evicted
