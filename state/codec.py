"""Everything the engine stores <-> bytes, for the Faust table and its changelog.

Customer states: compact JSON (orjson), short keys, default values left out, orders as small
arrays, the de-duplication ring as one base64 blob of 6-byte fingerprints. A typical customer
encodes to a few hundred bytes. ``v`` is the format version, so a later format can read this one.

Tag histories and audience buckets (``state/history.py``, ``state/audience.py``) are stored under
keys of their own beside the customers; ``history_key`` and ``audience_key`` make those keys, all
starting with a control byte that no customer id can contain (input validation refuses them), so
``is_customer_key`` tells them apart.
"""

from __future__ import annotations

import base64
import re
from decimal import Decimal
from itertools import accumulate, pairwise
from typing import Any

import orjson

from state.customer import CustomerState, Followup, LatestFollowup, Login, Order, TagState
from state.history import Edge, Step
from state.times import SECOND

FORMAT_VERSION = 1
_DISCOUNTED, _NEW_PRODUCT, _REFUNDED = 1, 2, 4
_PROFILE = (("or", "owner_rep"), ("sc", "source_channel"), ("ra", "registered_at"), ("bd", "birthday"))
_DEADLINE = re.compile(rb'"nd":(\d+)')
_TAGS = re.compile(rb'"t":\{([^}]*)\}')  # tag -> [dimension, since, seq]: no brace inside
_TAG_NAME = re.compile(rb'"([^"]+)":\[')
_CATALOG_VERSION = re.compile(rb'"cv":"([^"]*)"')
_SOURCE_CHANNEL = re.compile(rb'"sc":"((?:[^"\\]|\\.)*)"')


def encode_state(state: CustomerState) -> bytes:  # noqa: C901 (one flat test per field)
    doc: dict[str, Any] = {"v": FORMAT_VERSION, "c": state.customer_id, "s": state.seq}
    if state.orders:
        doc["o"] = [[o.key, o.at, str(o.amount), _flags(o)] for o in state.orders]
    if state.settled_paid:
        doc["sp"] = state.settled_paid
        doc["sf"] = state.settled_first_paid_at
    if state.followups:
        doc["f"] = [[f.key, f.at] for f in state.followups]
    if state.latest_followup is not None:
        latest = state.latest_followup
        doc["lf"] = [latest.at, latest.stage, latest.rep_id]
    if state.logins:
        doc["l"] = _encode_logins(state.logins)
    if state.last_activity_at is not None:
        doc["la"] = state.last_activity_at
    for key, attribute in _PROFILE:
        value = getattr(state, attribute)
        if value is not None:
            doc[key] = value
    if state.has_phone:
        doc["hp"] = 1
    if state.has_email:
        doc["he"] = 1
    if state.tags:
        doc["t"] = {tag: [held.dimension, held.since, held.seq] for tag, held in state.tags.items()}
    if state.expired:
        doc["x"] = sorted(state.expired)  # sorted: the same state always encodes to the same bytes
    if state.recent_event_ids:
        ids = state.recent_event_ids
        doc["r"] = base64.b64encode(b"".join(key.to_bytes(6, "big") for key in ids)).decode()
    if state.next_deadline is not None:
        doc["nd"] = state.next_deadline
    if state.catalog_version:
        doc["cv"] = state.catalog_version
    return orjson.dumps(doc)


def decode_state(data: bytes) -> CustomerState:
    doc = orjson.loads(data)
    if doc.get("v") != FORMAT_VERSION:
        raise ValueError(f"unknown customer state format {doc.get('v')!r}")
    state = CustomerState(doc["c"], seq=doc["s"])
    state.orders = [
        Order(key, at, Decimal(amount), bool(f & _DISCOUNTED), bool(f & _NEW_PRODUCT), bool(f & _REFUNDED))
        for key, at, amount, f in doc.get("o", ())
    ]
    state.settled_paid = doc.get("sp", 0)
    state.settled_first_paid_at = doc.get("sf")
    state.followups = [Followup(key, at) for key, at in doc.get("f", ())]
    if "lf" in doc:
        state.latest_followup = LatestFollowup(*doc["lf"])
    state.logins = _decode_logins(doc["l"]) if "l" in doc else []  # absent before login windows
    state.last_activity_at = doc.get("la")
    for key, attribute in _PROFILE:
        setattr(state, attribute, doc.get(key))
    state.has_phone = "hp" in doc
    state.has_email = "he" in doc
    state.tags = {tag: TagState(*held) for tag, held in doc.get("t", {}).items()}
    state.expired = set(doc.get("x", ()))  # absent from states written before validity periods
    if "r" in doc:
        blob = base64.b64decode(doc["r"])
        state.recent_event_ids = [int.from_bytes(blob[i : i + 6], "big") for i in range(0, len(blob), 6)]
    state.next_deadline = doc.get("nd")
    state.catalog_version = doc.get("cv", "")
    return state


def _encode_logins(logins: list[Login]) -> list[object]:
    """Up to a thousand logins, compactly: their keys as one base64 blob of 6-byte fingerprints,
    their times as differences from the previous one (sorted, so small numbers) in whole seconds
    when they all are (producers mostly send seconds; microseconds otherwise: times stay exact), and
    their channels as indexes into the list of distinct channels (0: none), left out when no login
    has one. ``[keys, unit, times]`` or ``[keys, unit, times, channels, indexes]``."""
    keys = base64.b64encode(b"".join(login.key.to_bytes(6, "big") for login in logins)).decode()
    times = [logins[0].at, *(b.at - a.at for a, b in pairwise(logins))]
    unit = SECOND if all(t % SECOND == 0 for t in times) else 1
    encoded: list[object] = [keys, unit, [t // unit for t in times]]
    channels = sorted({login.channel for login in logins if login.channel is not None})
    if channels:
        index = {channel: number for number, channel in enumerate(channels, 1)}
        encoded += [channels, [0 if login.channel is None else index[login.channel] for login in logins]]
    return encoded


def _decode_logins(encoded: list[Any]) -> list[Login]:
    blob = base64.b64decode(encoded[0])
    keys = [int.from_bytes(blob[i : i + 6], "big") for i in range(0, len(blob), 6)]
    unit = encoded[1]
    moments = [t * unit for t in accumulate(encoded[2])]
    names: list[str | None] = [None, *encoded[3]] if len(encoded) > 3 else [None]
    channels = [names[i] for i in encoded[4]] if len(encoded) > 3 else [None] * len(keys)
    return [Login(key, at, channel) for key, at, channel in zip(keys, moments, channels, strict=True)]


def _flags(order: Order) -> int:
    return (
        (_DISCOUNTED if order.discounted else 0)
        | (_NEW_PRODUCT if order.new_product else 0)
        | (_REFUNDED if order.refunded else 0)
    )


def peek_deadline(data: bytes) -> int | None:
    """A customer's next deadline straight from its encoded state, without decoding the rest:
    rebuilding the deadline index of a million customers reads only this field."""
    match = _DEADLINE.search(data)
    return int(match.group(1)) if match else None


def peek_tags(data: bytes) -> list[str]:
    """The tags an encoded state holds, without decoding the rest (counting holders when a
    partition is assigned reads only this)."""
    match = _TAGS.search(data)
    return [name.decode() for name in _TAG_NAME.findall(match.group(1))] if match else []


def peek_source_channel(data: bytes) -> str | None:
    """The profile's source channel of an encoded state, if any."""
    match = _SOURCE_CHANNEL.search(data)
    return str(orjson.loads(b'"' + match.group(1) + b'"')) if match else None


def peek_catalog_version(data: bytes) -> str:
    """The version of the catalog that last evaluated an encoded state ("" if none)."""
    match = _CATALOG_VERSION.search(data)
    return match.group(1).decode() if match else ""


# -- tag histories ----------------------------------------------------------------------------

_HISTORY = b"\x01h:"


def history_prefix(customer_id: str) -> bytes:
    """The start of the table keys of a customer's history steps (in the customer's partition);
    the NUL after the id keeps one customer's keys apart from another's whose id it begins."""
    return _HISTORY + customer_id.encode() + b"\x00"


def history_key(customer_id: str, seq: int) -> bytes:
    """The table key of one step: big-endian seq, so a customer's steps sort in seq order."""
    return history_prefix(customer_id) + seq.to_bytes(8, "big")


def is_customer_key(key: bytes) -> bool:
    """Whether a table key holds a customer state (not a history step, audience bucket or marker)."""
    return not key or key[0] >= 0x20


def encode_step(step: Step) -> bytes:
    e = step.edge
    return orjson.dumps([step.dimension, step.from_tag, step.to_tag, e.seq, e.at, e.rule_id, e.trigger,
                         e.catalog_version, e.reason, int(step.expired)])


def decode_step(data: bytes) -> Step:
    dimension, from_tag, to_tag, seq, at, rule_id, trigger, version, reason, expired = orjson.loads(data)
    return Step(dimension, from_tag, to_tag, Edge(seq, at, rule_id, trigger, version, reason), bool(expired))


# -- audience buckets -------------------------------------------------------------------------

_AUDIENCE = b"\x01a:"


def audience_key(partition: int, day: int) -> bytes:
    """The table key of one day of one partition's audience figures."""
    return b"%s%d:%d" % (_AUDIENCE, partition, day)


def audience_day_of(key: bytes) -> tuple[int, int] | None:
    """(partition, day) of an audience key; None for any other key."""
    if not key.startswith(_AUDIENCE):
        return None
    partition, day = key[len(_AUDIENCE):].split(b":")
    return int(partition), int(day)


def encode_audience_day(figures: dict[str, list[int]]) -> bytes:
    return orjson.dumps(figures)


def decode_audience_day(data: bytes) -> dict[str, list[int]]:
    figures: dict[str, list[int]] = orjson.loads(data)
    return figures
