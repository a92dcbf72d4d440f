"""Input records -> typed, validated events (SPEC section 2, "Input topics").

Every record read from ``orders``, ``logins``, ``followups`` and ``customers`` goes through
:func:`parse_event` before it can touch any customer state. Whatever the producer sent, the result
is either a frozen event whose fields all hold their documented types and ranges, or an
:class:`InvalidEvent` whose ``reason`` is a short stable code (a metric label) and whose
``message`` names the offending field, ready for the dead-letter record.

This module is pure (stdlib + orjson) and runs once per event at tens of thousands of events per
second, so the checks are written by hand instead of through a schema library.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, NoReturn, TypeAlias

import orjson

from state.times import MINUTE, format_timestamp, parse_timestamp

TOPICS: Final = ("orders", "logins", "followups", "customers")
MAX_VALUE_BYTES: Final = 64 * 1024
STAGES: Final = (
    "new_lead",
    "contacted",
    "needs_analysis",
    "proposal",
    "quoted",
    "negotiating",
    "won",
    "lost",
)
FOLLOWUP_KINDS: Final = ("call", "visit", "message", "email", "meeting")
ORDER_STATUSES: Final = ("paid", "refunded")

# Producers' clocks drift; beyond this an event time is a bug, and accepting it would move
# "now" (in replay) or fire deadlines early.
FUTURE_TOLERANCE: Final = 5 * MINUTE
MAX_ID_CHARS: Final = 128
MAX_CHANNEL_CHARS: Final = 64
MAX_NOTE_CHARS: Final = 4096
MAX_EMAIL_CHARS: Final = 254  # RFC 5321 path limit
MAX_ITEMS: Final = 1000
# Larger sums are data errors, and they would dominate every aggregate they enter.
MAX_MONEY: Final = Decimal(10) ** 15

# Identifiers end up in Redis keys, change ids and log lines, where control characters
# (including C1) corrupt or forge output.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DECIMAL = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?")
_PHONE = re.compile(r"1[0-9]{10}")
_BIRTHDAY = re.compile(r"([0-9]{2})-([0-9]{2})")
_WHITESPACE = re.compile(r"\s")
# February has 29: a birthday is a day of the year, not of a particular year.
_DAYS_IN_MONTH: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_SHOWN_CHARS: Final = 40


class InvalidEvent(Exception):
    """A record that cannot become an event.

    ``reason`` is a short stable code used as a metric label (``malformed_json``,
    ``not_an_object``, ``missing_field``, ``wrong_type``, ``bad_value``, ``unknown_enum``,
    ``too_large``, ``in_future``, ``unknown_topic``); ``message`` explains it and names the field.
    Messages never contain phone or email values.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[InvalidEvent], tuple[str, str]]:
        # The default pickling would call __init__(message) only; workers may ship errors across.
        return (InvalidEvent, (self.reason, self.message))


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    price: Decimal
    discounted: bool
    new_product: bool


@dataclass(frozen=True, slots=True)
class OrderEvent:
    event_id: str
    customer_id: str
    occurred_at: int
    order_id: str
    amount: Decimal
    currency: str
    status: str
    coupon_used: bool
    items: tuple[Item, ...]

    @property
    def discounted(self) -> bool:
        """Coupon used, or strictly more than half of the items discounted (catalog, behavior)."""
        if self.coupon_used:
            return True
        marked = sum(1 for item in self.items if item.discounted)
        return 2 * marked > len(self.items)

    @property
    def has_new_product(self) -> bool:
        return any(item.new_product for item in self.items)


@dataclass(frozen=True, slots=True)
class LoginEvent:
    event_id: str
    customer_id: str
    occurred_at: int
    channel: str | None


@dataclass(frozen=True, slots=True)
class FollowupEvent:
    event_id: str
    customer_id: str
    occurred_at: int
    rep_id: str
    stage: str
    kind: str | None
    note: str | None


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unset>"


# Profile upserts are partial: an absent field keeps the stored value, an explicit null clears it.
_UNSET: Final = _Unset()

PROFILE_FIELDS: Final = (
    "owner_rep",
    "source_channel",
    "registered_at",
    "birthday",
    "phone",
    "email",
)


@dataclass(frozen=True, slots=True)
class ProfileEvent:
    event_id: str
    customer_id: str
    occurred_at: int
    # Only the fields present in the upsert, in PROFILE_FIELDS order; a value of None clears it.
    fields: tuple[tuple[str, object], ...]

    def get(self, name: str, default: object = None) -> object:
        """The upserted value of ``name`` (None when explicitly cleared), else ``default``.

        Pass ``_UNSET`` as ``default`` to tell "absent" from "cleared".
        """
        for key, value in self.fields:
            if key == name:
                return value
        return default


Event: TypeAlias = OrderEvent | LoginEvent | FollowupEvent | ProfileEvent
_Record: TypeAlias = dict[str, object]
# (record, topic, event_id, customer_id, occurred_at, now) -> event
_Parser: TypeAlias = Callable[[_Record, str, str, str, int, int], Event]


def parse_event(topic: str, raw: bytes | None, now: int) -> Event:
    """Decode and validate one record value of logical topic ``topic``.

    ``now`` (microseconds) is the receive time: an ``occurred_at`` more than 5 minutes after it
    is invalid. Unknown fields are ignored so that producers can add fields first.
    Raises :class:`InvalidEvent`.
    """
    parser = _PARSERS.get(topic)
    if parser is None:
        expected = ", ".join(TOPICS)
        raise InvalidEvent("unknown_topic", f"unknown topic {_show(topic)}; expected {expected}")
    record = _decode(topic, raw)
    event_id = _identifier(record, topic, "event_id")
    customer_id = _identifier(record, topic, "customer_id")
    occurred_at = record.get("occurred_at")
    if occurred_at is None:
        _required(record, topic, "occurred_at")
    return parser(record, topic, event_id, customer_id, _timestamp(occurred_at, topic, "occurred_at", now), now)


def _decode(topic: str, raw: bytes | None) -> _Record:
    if not raw:
        raise InvalidEvent("malformed_json", f"{topic}: empty value (tombstone); expected JSON")
    # Checked before decoding so that a huge value costs nothing but its length.
    if len(raw) > MAX_VALUE_BYTES:
        size = len(raw)
        raise InvalidEvent("too_large", f"{topic}: value is {size} bytes, over {MAX_VALUE_BYTES}")
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's message gives the position, never the content: safe to pass on.
        raise InvalidEvent("malformed_json", f"{topic}: not UTF-8 JSON: {exc}") from None
    if type(record) is not dict:
        kind = _json_type(record)
        raise InvalidEvent("not_an_object", f"{topic}: value is a JSON {kind}, not an object")
    return record


# --- topic parsers -----------------------------------------------------------------------------


def _order(
    record: _Record, topic: str, event_id: str, customer_id: str, occurred_at: int, now: int
) -> OrderEvent:
    return OrderEvent(
        event_id,
        customer_id,
        occurred_at,
        _identifier(record, topic, "order_id"),
        _money(_required(record, topic, "amount"), topic, "amount"),
        _currency(record.get("currency"), topic),
        _enum(_required(record, topic, "status"), topic, "status", ORDER_STATUSES),
        _flag(record.get("coupon_used"), topic, "coupon_used"),
        _items(record.get("items"), topic),
    )


def _login(
    record: _Record, topic: str, event_id: str, customer_id: str, occurred_at: int, now: int
) -> LoginEvent:
    channel = record.get("channel")
    if channel is not None:
        channel = _label(channel, topic, "channel", MAX_CHANNEL_CHARS)
    return LoginEvent(event_id, customer_id, occurred_at, channel)


def _followup(
    record: _Record, topic: str, event_id: str, customer_id: str, occurred_at: int, now: int
) -> FollowupEvent:
    kind = record.get("kind")
    return FollowupEvent(
        event_id,
        customer_id,
        occurred_at,
        _identifier(record, topic, "rep_id"),
        _enum(_required(record, topic, "stage"), topic, "stage", STAGES),
        None if kind is None else _enum(kind, topic, "kind", FOLLOWUP_KINDS),
        _note(record.get("note"), topic),
    )


def _profile(
    record: _Record, topic: str, event_id: str, customer_id: str, occurred_at: int, now: int
) -> ProfileEvent:
    fields: list[tuple[str, object]] = []
    for name, check in _PROFILE_CHECKS.items():  # in PROFILE_FIELDS order
        value = record.get(name, _UNSET)
        if value is not _UNSET:
            fields.append((name, value if value is None else check(value, topic, name, now)))
    return ProfileEvent(event_id, customer_id, occurred_at, tuple(fields))


_PARSERS: Final[dict[str, _Parser]] = {
    "orders": _order,
    "logins": _login,
    "followups": _followup,
    "customers": _profile,
}


# --- field checks ------------------------------------------------------------------------------


def _fail(reason: str, topic: str, name: str, text: str) -> NoReturn:
    raise InvalidEvent(reason, f"{topic}.{name}: {text}")


def _required(record: _Record, topic: str, name: str) -> object:
    value = record.get(name)
    if value is None:
        # An explicit null carries no more information than an absent field.
        got = ", got null" if name in record else ""
        _fail("missing_field", topic, name, f"is required{got}")
    return value


def _string(value: object, topic: str, name: str, max_chars: int) -> str:
    if type(value) is not str:
        _fail("wrong_type", topic, name, f"must be a string, got {_json_type(value)}")
    if len(value) > max_chars:
        _fail("bad_value", topic, name, f"must be at most {max_chars} characters, got {len(value)}")
    return value


def _label(value: object, topic: str, name: str, max_chars: int) -> str:
    """A non-blank string without control characters: identifiers, channels."""
    # Fast path for the valid case (several per event); isprintable() is a cheap C-level proof
    # that the regex would find nothing.
    if (
        type(value) is str
        and 0 < len(value) <= max_chars
        and not value.isspace()
        and (value.isprintable() or _CONTROL.search(value) is None)
    ):
        return value
    _label_error(value, topic, name, max_chars)


def _label_error(value: object, topic: str, name: str, max_chars: int) -> NoReturn:
    text = _string(value, topic, name, max_chars)
    if not text.strip():
        _fail("bad_value", topic, name, "must not be empty or blank")
    _fail("bad_value", topic, name, "must not contain control characters")


def _identifier(record: _Record, topic: str, name: str) -> str:
    value = record.get(name)
    # _label's fast path, inlined: two or three identifiers per event
    if type(value) is str and 0 < len(value) <= MAX_ID_CHARS and value.isprintable() and not value.isspace():
        return value
    if value is None:
        _required(record, topic, name)
    return _label(value, topic, name, MAX_ID_CHARS)


def _timestamp(value: object, topic: str, name: str, now: int | None) -> int:
    """An ISO-8601 time with offset; with ``now``, at most 5 minutes after it."""
    if type(value) is not str:
        _fail("wrong_type", topic, name, f"must be an ISO-8601 string, got {_json_type(value)}")
    try:
        moment = parse_timestamp(value)
    except (ValueError, OverflowError):
        _fail("bad_value", topic, name, f"must be ISO-8601 with a UTC offset, got {_show(value)}")
    if now is not None and moment > now + FUTURE_TOLERANCE:
        _fail(
            "in_future",
            topic,
            name,
            f"{value} is more than 5 minutes after the receive time {format_timestamp(now)}",
        )
    return moment


def _flag(value: object, topic: str, name: str) -> bool:
    if value is None:
        return False
    if type(value) is not bool:
        _fail("wrong_type", topic, name, f"must be true or false, got {_json_type(value)}")
    return value


def _money(value: object, topic: str, name: str) -> Decimal:
    amount = _decimal(value, topic, name)
    if amount < 0:
        _fail("bad_value", topic, name, f"must be >= 0, got {_show(value)}")
    if amount > MAX_MONEY:
        _fail("bad_value", topic, name, f"must be at most 1e15, got {_show(value)}")
    # -0 and 0 are equal but -0 would print as "-0" in reasons.
    return amount.copy_abs() if amount == 0 else amount


def _decimal(value: object, topic: str, name: str) -> Decimal:
    if type(value) is int:
        return Decimal(value)
    if type(value) is float:
        # repr is the shortest text that round-trips: what the producer wrote (12.5, not 12.49...).
        if not math.isfinite(value):
            _fail("bad_value", topic, name, "must be a finite number")
        return Decimal(repr(value))
    if type(value) is str:
        if not _DECIMAL.fullmatch(value):
            _fail("bad_value", topic, name, f'must be a decimal like "12.50", got {_show(value)}')
        return Decimal(value)
    _fail("wrong_type", topic, name, f"must be a number or decimal string, got {_json_type(value)}")


def _currency(value: object, topic: str) -> str:
    if value is None:
        return "CNY"
    text = _string(value, topic, "currency", 3)
    if len(text) != 3 or not (text.isascii() and text.isalpha()):
        _fail("bad_value", topic, "currency", f"must be 3 letters (ISO 4217), got {_show(text)}")
    return text.upper()


def _enum(value: object, topic: str, name: str, allowed: tuple[str, ...]) -> str:
    if type(value) is not str:
        _fail("wrong_type", topic, name, f"must be a string, got {_json_type(value)}")
    if value not in allowed:
        expected = ", ".join(allowed)
        _fail("unknown_enum", topic, name, f"must be one of {expected}; got {_show(value)}")
    return value


def _note(value: object, topic: str) -> str | None:
    if value is None:
        return None
    return _string(value, topic, "note", MAX_NOTE_CHARS)


def _items(value: object, topic: str) -> tuple[Item, ...]:
    if value is None:
        return ()
    if type(value) is not list:
        _fail("wrong_type", topic, "items", f"must be an array, got {_json_type(value)}")
    if len(value) > MAX_ITEMS:
        _fail("bad_value", topic, "items", f"must have at most {MAX_ITEMS} items, got {len(value)}")
    items = []
    for index, entry in enumerate(value):
        item = _usual_item(entry)
        # _item checks everything again, to name what is wrong (or accept a rarer valid form).
        items.append(_item(entry, f"{topic}.items[{index}]") if item is None else item)
    return tuple(items)


def _usual_item(entry: object) -> Item | None:
    """The item when it has the usual valid form (an identifier sku, a positive float or int
    price within MAX_MONEY, boolean or absent flags), else None. A fast path: an order carries
    several items, and _item's checks cost a call each."""
    if type(entry) is not dict:
        return None
    sku, price = entry.get("sku"), entry.get("price")
    discounted, new_product = entry.get("discounted", False), entry.get("new_product", False)
    if not (
        type(sku) is str
        and 0 < len(sku) <= MAX_ID_CHARS
        and sku.isprintable()
        and not sku.isspace()
        and type(discounted) is bool
        and type(new_product) is bool
    ):
        return None
    # As _decimal would: the shortest repr of a float is what the producer wrote. Comparing the
    # float with 1e15 (exact as a float) decides as comparing its Decimal with MAX_MONEY does;
    # 0 < price also keeps out -0.0 and NaN.
    if type(price) is float and 0 < price <= 1e15:
        return Item(sku, Decimal(repr(price)), discounted, new_product)
    if type(price) is int and 0 < price <= MAX_MONEY:
        return Item(sku, Decimal(price), discounted, new_product)
    return None


def _item(entry: object, where: str) -> Item:
    if type(entry) is not dict:
        raise InvalidEvent("wrong_type", f"{where}: must be an object, got {_json_type(entry)}")
    return Item(
        sku=_identifier(entry, where, "sku"),
        price=_money(_required(entry, where, "price"), where, "price"),
        discounted=_flag(entry.get("discounted"), where, "discounted"),
        new_product=_flag(entry.get("new_product"), where, "new_product"),
    )


# --- profile fields (values are never null here; null means "clear") ----------------------------


def _profile_label(value: object, topic: str, name: str, now: int) -> str:
    """owner_rep, source_channel: identifiers."""
    return _label(value, topic, name, MAX_ID_CHARS)


def _registered_at(value: object, topic: str, name: str, now: int) -> int:
    # A profile field, not the event's time: the contract sets no bound on it, and refusing the
    # whole upsert for it would leave the customer unknown.
    return _timestamp(value, topic, name, None)


def _birthday(value: object, topic: str, name: str, now: int) -> str:
    text = _string(value, topic, name, 5)
    match = _BIRTHDAY.fullmatch(text)
    if match is None:
        _fail("bad_value", topic, name, f'must be "MM-DD", got {_show(text)}')
    month, day = int(match[1]), int(match[2])
    if not (1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]):
        _fail("bad_value", topic, name, f"is not a calendar day: {text}")
    return text


def _phone(value: object, topic: str, name: str, now: int) -> str:
    # Privacy: the messages below must never include the value.
    if type(value) is not str:
        _fail("wrong_type", topic, name, f"must be a string, got {_json_type(value)}")
    if not _PHONE.fullmatch(value):
        _fail("bad_value", topic, name, "not a mainland mobile number (11 digits starting with 1)")
    return value


def _email(value: object, topic: str, name: str, now: int) -> str:
    # Privacy: the messages below must never include the value.
    if type(value) is not str:
        _fail("wrong_type", topic, name, f"must be a string, got {_json_type(value)}")
    if len(value) > MAX_EMAIL_CHARS:
        _fail("bad_value", topic, name, f"must be at most {MAX_EMAIL_CHARS} characters")
    local, at, domain = value.partition("@")
    if not (at and local and domain) or "@" in domain or _WHITESPACE.search(value):
        _fail("bad_value", topic, name, "not an email address (one @, text either side, no spaces)")
    return value


_PROFILE_CHECKS: Final = {
    "owner_rep": _profile_label,
    "source_channel": _profile_label,
    "registered_at": _registered_at,
    "birthday": _birthday,
    "phone": _phone,
    "email": _email,
}


# --- message helpers ---------------------------------------------------------------------------


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "boolean"
    if type(value) in (int, float):
        return "number"
    if type(value) is str:
        return "string"
    if type(value) is list:
        return "array"
    return "object"


def _show(value: object) -> str:
    """A bounded rendering: a 64 KiB value must not become a 64 KiB log line."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
