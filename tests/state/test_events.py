"""Specification of input validation (SPEC section 2): what becomes an event, what is refused."""

from __future__ import annotations

import math
import pickle
import random
from decimal import Decimal
from typing import Any

import orjson
import pytest

from state.events import (
    _UNSET,
    MAX_VALUE_BYTES,
    TOPICS,
    FollowupEvent,
    InvalidEvent,
    Item,
    LoginEvent,
    OrderEvent,
    ProfileEvent,
    parse_event,
)
from state.times import MINUTE, parse_timestamp

NOW = parse_timestamp("2026-11-22T10:00:00Z")
ABSENT = object()  # in overrides: remove the field from the record

BASE: dict[str, dict[str, Any]] = {
    "orders": {"order_id": "o1", "amount": 120, "status": "paid"},
    "logins": {},
    "followups": {"rep_id": "rep7", "stage": "contacted"},
    "customers": {},
}


def record(topic: str, **overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "event_id": "e1",
        "customer_id": "c42",
        "occurred_at": "2026-11-22T09:00:00Z",
        **BASE[topic],
    }
    for name, field_value in overrides.items():
        if field_value is ABSENT:
            value.pop(name, None)
        else:
            value[name] = field_value
    return value


def parse(topic: str, **overrides: Any) -> Any:
    return parse_event(topic, orjson.dumps(record(topic, **overrides)), NOW)


def refusal(topic: str, **overrides: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        parse(topic, **overrides)
    return caught.value


def raw_refusal(topic: str, raw: bytes | None) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(topic, raw, NOW)
    return caught.value


# --- valid events ------------------------------------------------------------------------------


def test_minimal_paid_order_gets_defaults() -> None:
    event = parse("orders")
    assert event == OrderEvent(
        event_id="e1",
        customer_id="c42",
        occurred_at=parse_timestamp("2026-11-22T09:00:00Z"),
        order_id="o1",
        amount=Decimal(120),
        currency="CNY",
        status="paid",
        coupon_used=False,
        items=(),
    )


def test_refund_status_is_accepted() -> None:
    assert parse("orders", status="refunded").status == "refunded"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("12.50", Decimal("12.50")), ("0", Decimal(0)), ("7", Decimal(7))],
)
def test_order_amount_accepts_decimal_string(amount: str, expected: Decimal) -> None:
    assert parse("orders", amount=amount).amount == expected


@pytest.mark.parametrize(
    ("amount", "expected"), [(19.99, "19.99"), (0.1, "0.1"), (5000, "5000"), (0, "0")]
)
def test_order_amount_number_keeps_the_digits_the_producer_wrote(
    amount: float, expected: str
) -> None:
    assert str(parse("orders", amount=amount).amount) == expected


def test_negative_zero_amount_is_plain_zero() -> None:
    assert str(parse("orders", amount="-0.00").amount) == "0.00"


def test_currency_is_upper_cased() -> None:
    assert parse("orders", currency="usd").currency == "USD"


def test_order_items_are_parsed_with_defaults() -> None:
    items = [
        {"sku": "A", "price": "9.90", "discounted": True, "new_product": True},
        {"sku": "B", "price": 3},
    ]
    event = parse("orders", items=items)
    assert event.items == (
        Item(sku="A", price=Decimal("9.90"), discounted=True, new_product=True),
        Item(sku="B", price=Decimal(3), discounted=False, new_product=False),
    )
    assert event.has_new_product


def test_order_without_new_product_items_has_no_new_product() -> None:
    assert not parse("orders", items=[{"sku": "A", "price": 1}]).has_new_product


def test_null_optional_order_fields_take_their_defaults() -> None:
    event = parse("orders", currency=None, coupon_used=None, items=None)
    assert (event.currency, event.coupon_used, event.items) == ("CNY", False, ())


def test_unknown_extra_fields_are_ignored() -> None:
    assert parse("logins", channel="app", device={"os": "ios"}, v=2).channel == "app"


def test_login_channel_is_optional() -> None:
    assert parse("logins") == LoginEvent(
        event_id="e1", customer_id="c42", occurred_at=NOW - 60 * MINUTE, channel=None
    )
    assert parse("logins", channel=None).channel is None
    assert parse("logins", channel="mini_program").channel == "mini_program"


def test_followup_with_kind_and_note() -> None:
    event = parse("followups", stage="quoted", kind="visit", note="wants a quote\nby Friday")
    assert event == FollowupEvent(
        event_id="e1",
        customer_id="c42",
        occurred_at=NOW - 60 * MINUTE,
        rep_id="rep7",
        stage="quoted",
        kind="visit",
        note="wants a quote\nby Friday",
    )


def test_followup_kind_and_note_may_be_null() -> None:
    event = parse("followups", kind=None, note=None)
    assert (event.kind, event.note) == (None, None)


def test_occurred_at_with_offset_is_converted_to_utc_micros() -> None:
    event = parse("logins", occurred_at="2026-11-22T17:00:00.000001+08:00")
    assert event.occurred_at == NOW - 60 * MINUTE + 1


def test_event_five_minutes_ahead_is_accepted_and_one_microsecond_more_is_not() -> None:
    assert parse("logins", occurred_at="2026-11-22T10:05:00Z").occurred_at == NOW + 5 * MINUTE
    error = refusal("logins", occurred_at="2026-11-22T10:05:00.000001Z")
    assert error.reason == "in_future"
    assert error.message.startswith("logins.occurred_at:")


def test_every_topic_is_accepted() -> None:
    for topic in TOPICS:
        assert parse(topic).customer_id == "c42"


def test_identifiers_are_kept_verbatim() -> None:
    assert parse("logins", customer_id=" 客户-42 ").customer_id == " 客户-42 "


# --- the discounted rule (catalog: price_sensitive) ---------------------------------------------


def items_with(discounted: int, plain: int) -> list[dict[str, Any]]:
    flags = [True] * discounted + [False] * plain
    return [{"sku": f"s{i}", "price": 1, "discounted": flag} for i, flag in enumerate(flags)]


@pytest.mark.parametrize(
    ("coupon_used", "discounted", "plain", "expected"),
    [
        (True, 0, 0, True),
        (True, 0, 3, True),
        (False, 0, 0, False),
        (False, 1, 1, False),  # exactly half is not "more than half"
        (False, 2, 2, False),
        (False, 2, 1, True),
        (False, 1, 0, True),
        (False, 0, 3, False),
    ],
)
def test_order_is_discounted_with_coupon_or_more_than_half_items_discounted(
    coupon_used: bool, discounted: int, plain: int, expected: bool
) -> None:
    event = parse("orders", coupon_used=coupon_used, items=items_with(discounted, plain))
    assert event.discounted is expected


# --- profile upserts ---------------------------------------------------------------------------


def test_profile_holds_only_present_fields_in_fixed_order() -> None:
    event = parse(
        "customers",
        email="a@b.cn",
        owner_rep="rep7",
        birthday="02-29",
        registered_at="2020-01-01T00:00:00+08:00",
    )
    assert isinstance(event, ProfileEvent)
    assert event.fields == (
        ("owner_rep", "rep7"),
        ("registered_at", parse_timestamp("2019-12-31T16:00:00Z")),
        ("birthday", "02-29"),
        ("email", "a@b.cn"),
    )


def test_profile_null_clears_and_absent_is_unset() -> None:
    event = parse("customers", owner_rep=None, phone="13800138000")
    assert event.get("owner_rep", _UNSET) is None
    assert event.get("source_channel", _UNSET) is _UNSET
    assert event.get("source_channel") is None
    assert event.get("phone") == "13800138000"


def test_empty_profile_upsert_is_valid() -> None:
    assert parse("customers").fields == ()


# --- refused records ---------------------------------------------------------------------------


def test_unknown_topic_is_refused() -> None:
    error = raw_refusal("payments", orjson.dumps(record("logins")))
    assert error.reason == "unknown_topic"


def test_prefixed_topic_name_is_unknown() -> None:
    assert raw_refusal("prod.orders", orjson.dumps(record("orders"))).reason == "unknown_topic"


@pytest.mark.parametrize("raw", [None, b""], ids=["tombstone", "empty"])
def test_missing_value_is_malformed_json(raw: bytes | None) -> None:
    assert raw_refusal("orders", raw).reason == "malformed_json"


@pytest.mark.parametrize(
    "raw",
    [b"{", b"{'a': 1}", b"not json", b'{"amount": NaN}', b'{"amount": 1e400}', b"\xef\xbb\xbf{}"],
)
def test_invalid_json_is_malformed_json(raw: bytes) -> None:
    assert raw_refusal("orders", raw).reason == "malformed_json"


def test_non_utf8_value_is_malformed_json() -> None:
    raw = orjson.dumps(record("logins", channel="web")).replace(b"web", b"w\xffb")
    assert raw_refusal("logins", raw).reason == "malformed_json"


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_refused(raw: bytes) -> None:
    assert raw_refusal("logins", raw).reason == "not_an_object"


def test_value_over_64_kib_is_too_large() -> None:
    padded = record("followups", note="x" * 100)
    base = len(orjson.dumps(padded))
    padded["pad"] = "y" * (MAX_VALUE_BYTES - base - len(',"pad":""'))
    exact = orjson.dumps(padded)
    assert len(exact) == MAX_VALUE_BYTES
    parse_event("followups", exact, NOW)  # exactly 64 KiB is still fine
    padded["pad"] += "y"
    assert raw_refusal("followups", orjson.dumps(padded)).reason == "too_large"


def test_too_large_is_decided_before_decoding() -> None:
    assert raw_refusal("orders", b"{" * (MAX_VALUE_BYTES + 1)).reason == "too_large"


@pytest.mark.parametrize(
    ("topic", "field"),
    [
        ("orders", "event_id"),
        ("orders", "customer_id"),
        ("orders", "occurred_at"),
        ("orders", "order_id"),
        ("orders", "amount"),
        ("orders", "status"),
        ("followups", "rep_id"),
        ("followups", "stage"),
    ],
)
@pytest.mark.parametrize("how", [ABSENT, None], ids=["absent", "null"])
def test_required_field_absent_or_null_is_missing_field(topic: str, field: str, how: Any) -> None:
    error = refusal(topic, **{field: how})
    assert error.reason == "missing_field"
    assert error.message.startswith(f"{topic}.{field}:")


def test_item_without_price_is_missing_field_and_names_the_item() -> None:
    error = refusal("orders", items=[{"sku": "A", "price": 1}, {"sku": "B"}])
    assert error.reason == "missing_field"
    assert error.message.startswith("orders.items[1].price:")


@pytest.mark.parametrize(
    ("topic", "field", "value"),
    [
        ("orders", "event_id", 17),
        ("orders", "customer_id", ["c42"]),
        ("orders", "occurred_at", 1_700_000_000),
        ("orders", "order_id", {"id": 1}),
        ("orders", "amount", True),
        ("orders", "amount", {"value": 1}),
        ("orders", "currency", 156),
        ("orders", "status", 1),
        ("orders", "coupon_used", 1),
        ("orders", "coupon_used", 0),
        ("orders", "coupon_used", "true"),
        ("orders", "items", {"sku": "A"}),
        ("orders", "items", ["A"]),
        ("orders", "items", [{"sku": "A", "price": 1, "discounted": "yes"}]),
        ("orders", "items", [{"sku": "A", "price": 1, "new_product": 1}]),
        ("orders", "items", [{"sku": 5, "price": 1}]),
        ("logins", "channel", 3),
        ("followups", "rep_id", 7),
        ("followups", "stage", ["won"]),
        ("followups", "kind", False),
        ("followups", "note", 12),
        ("customers", "owner_rep", 7),
        ("customers", "source_channel", False),
        ("customers", "registered_at", 1_600_000_000),
        ("customers", "birthday", 229),
        ("customers", "phone", 13800138000),
        ("customers", "email", ["a@b.cn"]),
    ],
)
def test_mistyped_field_is_wrong_type(topic: str, field: str, value: Any) -> None:
    error = refusal(topic, **{field: value})
    assert error.reason == "wrong_type"
    assert error.message.startswith(f"{topic}.{field}")


@pytest.mark.parametrize(
    ("topic", "field", "value"),
    [
        ("orders", "event_id", ""),
        ("orders", "event_id", "   "),
        ("orders", "event_id", "e" * 129),
        ("orders", "customer_id", ""),
        ("orders", "customer_id", "\t"),
        ("orders", "customer_id", "c" * 129),
        ("orders", "customer_id", "c42\n"),
        ("orders", "customer_id", "c\x0042"),
        ("orders", "occurred_at", "2026-11-22T09:00:00"),  # no offset
        ("orders", "occurred_at", "2026-11-22"),
        ("orders", "occurred_at", "yesterday"),
        ("orders", "occurred_at", "2026-02-30T09:00:00Z"),
        ("orders", "order_id", ""),
        ("orders", "amount", -3),
        ("orders", "amount", -0.01),
        ("orders", "amount", "-3"),
        ("orders", "amount", "12,50"),
        ("orders", "amount", " 12.50"),
        ("orders", "amount", "1e3"),
        ("orders", "amount", "NaN"),
        ("orders", "amount", "Infinity"),
        ("orders", "amount", ""),
        ("orders", "amount", "1000000000000000.01"),
        ("orders", "amount", 2e15),
        ("orders", "amount", 2**63 - 1),
        ("orders", "currency", "RMB1"),
        ("orders", "currency", "CN"),
        ("orders", "currency", "€€€"),
        ("orders", "currency", ""),
        ("orders", "items", [{"sku": "A", "price": -1}]),
        ("orders", "items", [{"sku": "", "price": 1}]),
        ("orders", "items", [{"sku": "A", "price": "free"}]),
        ("orders", "items", [{"sku": "A", "price": 1}] * 1001),
        ("logins", "channel", ""),
        ("logins", "channel", "c" * 65),
        ("followups", "rep_id", " "),
        ("followups", "note", "n" * 4097),
        ("customers", "owner_rep", ""),
        ("customers", "source_channel", " "),
        ("customers", "registered_at", "2020-01-01 00:00:00"),
        ("customers", "birthday", "2-29"),
        ("customers", "birthday", "02/29"),
        ("customers", "birthday", "02-30"),
        ("customers", "birthday", "04-31"),
        ("customers", "birthday", "13-01"),
        ("customers", "birthday", "00-10"),
        ("customers", "birthday", "1990-02-01"),
        ("customers", "phone", "1380013800"),
        ("customers", "phone", "138001380000"),
        ("customers", "phone", "23800138000"),
        ("customers", "phone", "+8613800138000"),
        ("customers", "phone", "138-0013-800"),
        ("customers", "phone", "１３８００１３８０００"),  # full-width digits
        ("customers", "email", "alice"),
        ("customers", "email", "@b.cn"),
        ("customers", "email", "alice@"),
        ("customers", "email", "a@b@c.cn"),
        ("customers", "email", "al ice@b.cn"),
        ("customers", "email", "a@" + "b" * 253),
    ],
)
def test_out_of_range_value_is_bad_value(topic: str, field: str, value: Any) -> None:
    error = refusal(topic, **{field: value})
    assert error.reason == "bad_value"
    assert error.message.startswith(f"{topic}.{field}")


def test_amount_message_names_field_and_value() -> None:
    assert str(refusal("orders", amount=-3)) == "orders.amount: must be >= 0, got -3"


def test_amount_up_to_1e15_is_accepted() -> None:
    assert parse("orders", amount="1000000000000000").amount == Decimal(10) ** 15


def test_one_thousand_items_are_accepted() -> None:
    assert len(parse("orders", items=[{"sku": "A", "price": 1}] * 1000).items) == 1000


def test_note_of_4096_characters_is_accepted() -> None:
    assert parse("followups", note="n" * 4096).note == "n" * 4096


def test_ids_of_128_characters_are_accepted() -> None:
    assert parse("orders", event_id="e" * 128, customer_id="c" * 128).customer_id == "c" * 128


@pytest.mark.parametrize(
    ("topic", "field", "value"),
    [
        ("orders", "status", "PAID"),
        ("orders", "status", "cancelled"),
        ("followups", "stage", "closed"),
        ("followups", "stage", "Won"),
        ("followups", "kind", "fax"),
        ("followups", "kind", ""),
    ],
)
def test_value_outside_its_enum_is_unknown_enum(topic: str, field: str, value: str) -> None:
    error = refusal(topic, **{field: value})
    assert error.reason == "unknown_enum"
    assert error.message.startswith(f"{topic}.{field}:")


def test_unknown_stage_is_unknown_enum() -> None:
    error = refusal("followups", stage="closed")
    assert error.reason == "unknown_enum"
    assert "proposal" in error.message  # the message lists what would have been accepted


def test_registered_at_in_the_future_is_kept_as_given() -> None:
    # Only the event's own time is bounded by the contract; a profile field is data.
    assert parse("customers", registered_at="2027-01-01T00:00:00Z").get("registered_at") == parse_timestamp(
        "2027-01-01T00:00:00Z"
    )


# --- privacy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("phone", ["1380013800", "23800138000", "138 0013 8000", "+8613800138000"])
def test_phone_value_never_appears_in_error_message(phone: str) -> None:
    error = refusal("customers", phone=phone)
    assert error.reason == "bad_value"
    assert phone not in error.message
    assert "138" not in error.message
    assert "not a mainland mobile number" in error.message


@pytest.mark.parametrize("email", ["alice.example.com", "alice@@example.com", "ali ce@example.com"])
def test_email_value_never_appears_in_error_message(email: str) -> None:
    error = refusal("customers", email=email)
    assert error.reason == "bad_value"
    assert "alice" not in error.message
    assert "example" not in error.message


def test_long_values_are_shortened_in_messages() -> None:
    error = refusal("followups", stage="x" * 10_000)
    assert len(error.message) < 300


# --- the exception itself ----------------------------------------------------------------------


def test_invalid_event_carries_reason_and_message() -> None:
    error = InvalidEvent("bad_value", "orders.amount: must be >= 0, got -3")
    assert (error.reason, error.message, str(error)) == (
        "bad_value",
        "orders.amount: must be >= 0, got -3",
        "orders.amount: must be >= 0, got -3",
    )


def test_invalid_event_survives_pickling() -> None:
    copy = pickle.loads(pickle.dumps(InvalidEvent("too_large", "orders: too big")))
    assert (copy.reason, copy.message) == ("too_large", "orders: too big")


def test_events_are_immutable() -> None:
    event = parse("logins")
    with pytest.raises(AttributeError):
        event.channel = "web"


def test_the_fast_path_for_items_agrees_with_the_full_checks() -> None:
    """``_usual_item`` takes only items ``_item`` accepts, and reads them identically: prices at
    the edges (zero, negative zero, MAX_MONEY and the next float, non-finite), flags that are
    not booleans, skus that are blank or carry control characters."""
    from state.events import _item, _usual_item

    prices: list[object] = [0, 0.0, -0.0, -1, 1, 12.5, 0.1, 1e-7, 1e15, 10**15, 10**15 + 1,
                            math.nextafter(1e15, math.inf), math.inf, math.nan, True, "12.50", None]
    flags: list[object] = [True, False, None, 0, 1, ABSENT]
    skus: list[object] = ["sku-1", " ", "", "a\x85b", "\u00a0x", "s" * 128, "s" * 129, 7, None]
    rng = random.Random(7)
    for _ in range(3000):
        entry: dict[str, object] = {"sku": rng.choice(skus), "price": rng.choice(prices)}
        for flag in ("discounted", "new_product"):
            value = rng.choice(flags)
            if value is not ABSENT:
                entry[flag] = value
        fast = _usual_item(entry)
        try:
            full = _item(entry, "orders.items[0]")
        except InvalidEvent:
            assert fast is None, entry
            continue
        assert fast is None or (fast == full and str(fast.price) == str(full.price)), entry


def test_profile_fields_are_checked_in_their_documented_order() -> None:
    from state.events import _PROFILE_CHECKS, PROFILE_FIELDS

    assert tuple(_PROFILE_CHECKS) == PROFILE_FIELDS
