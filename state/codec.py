"""Everything the engine stores <-> bytes, for the Faust table and its changelog.

Customer states: compact JSON (orjson), short keys, default values left out, orders as small
arrays, the de-duplication ring as one base64 blob of 6-byte fingerprints. A typical customer
encodes to a few hundred bytes. ``v`` is the format version, so a later format can read this one.
The same state always encodes to the same bytes.

Every customer a batch touches is encoded once at the end of the batch, so the encoding is written
for speed: fields read inline, no helper call per field, and long login lists (the largest part of
a heavy customer) encoded once and reused while they hold the same logins (``_Memo``).

Tag histories and audience buckets (``state/history.py``, ``state/audience.py``) are stored under
keys of their own beside the customers; ``history_key`` and ``audience_key`` make those keys, all
starting with a control byte that no customer id can contain (input validation refuses them), so
``is_customer_key`` tells them apart.
"""

from __future__ import annotations

import binascii
import re
from collections import OrderedDict
from decimal import Decimal
from itertools import accumulate
from operator import is_
from typing import Any

import orjson

from state.customer import CustomerState, Followup, LatestFollowup, Login, Order, TagState
from state.history import Edge, Step
from state.times import SECOND

FORMAT_VERSION = 1
_DISCOUNTED, _NEW_PRODUCT, _REFUNDED = 1, 2, 4
_DEADLINE = re.compile(rb'"nd":(\d+)')
_TAGS = re.compile(rb'"t":\{([^}]*)\}')  # tag -> [dimension, since, seq]: no brace inside
_TAG_NAME = re.compile(rb'"([^"]+)":\[')
_CATALOG_VERSION = re.compile(rb'"cv":"([^"]*)"')
_SOURCE_CHANNEL = re.compile(rb'"sc":"((?:[^"\\]|\\.)*)"')


def encode_state(state: CustomerState) -> bytes:  # noqa: C901 (one flat test per field)
    # Runs once per customer touched by a batch: fields are read once each, in the order of the
    # format (the same state must always give the same bytes), with no helper call per field.
    doc: dict[str, Any] = {"v": FORMAT_VERSION, "c": state.customer_id, "s": state.seq}
    if state.orders:
        # bools add up as ints: discounted 1, new product 2, refunded 4 (_DISCOUNTED, ...)
        doc["o"] = [[o.key, o.at, str(o.amount), o.discounted + 2 * o.new_product + 4 * o.refunded]
                    for o in state.orders]
    if state.settled_paid:
        doc["sp"] = state.settled_paid
        doc["sf"] = state.settled_first_paid_at
    if state.followups:
        doc["f"] = [[f.key, f.at] for f in state.followups]
    latest = state.latest_followup
    if latest is not None:
        doc["lf"] = [latest.at, latest.stage, latest.rep_id]
    if state.logins:
        doc["l"] = _logins_field(state.customer_id, state.logins)
    if state.last_activity_at is not None:
        doc["la"] = state.last_activity_at
    if state.owner_rep is not None:
        doc["or"] = state.owner_rep
    if state.source_channel is not None:
        doc["sc"] = state.source_channel
    if state.registered_at is not None:
        doc["ra"] = state.registered_at
    if state.birthday is not None:
        doc["bd"] = state.birthday
    if state.has_phone:
        doc["hp"] = 1
    if state.has_email:
        doc["he"] = 1
    if state.tags:
        tags = doc["t"] = {}  # a loop, not a comprehension: no function call for a few tags
        for tag, held in state.tags.items():
            tags[tag] = [held.dimension, held.since, held.seq]
    if state.expired:
        doc["x"] = sorted(state.expired)  # sorted: the same state always encodes to the same bytes
    if state.recent_event_ids:
        doc["r"] = _fingerprints(state.recent_event_ids)
    if state.next_deadline is not None:
        doc["nd"] = state.next_deadline
    if state.catalog_version:
        doc["cv"] = state.catalog_version
    return orjson.dumps(doc)


def decode_state(data: bytes) -> CustomerState:
    doc = orjson.loads(data)
    if doc.get("v") != FORMAT_VERSION:
        raise ValueError(f"unknown customer state format {doc.get('v')!r}")
    get = doc.get
    state = CustomerState(
        doc["c"],
        settled_paid=get("sp", 0),
        settled_first_paid_at=get("sf"),
        last_activity_at=get("la"),
        owner_rep=get("or"),
        source_channel=get("sc"),
        registered_at=get("ra"),
        birthday=get("bd"),
        has_phone="hp" in doc,
        has_email="he" in doc,
        seq=doc["s"],
        next_deadline=get("nd"),
        catalog_version=get("cv", ""),
    )
    if "o" in doc:
        state.orders = [
            Order(key, at, Decimal(amount), bool(f & _DISCOUNTED), bool(f & _NEW_PRODUCT), bool(f & _REFUNDED))
            for key, at, amount, f in doc["o"]
        ]
    if "f" in doc:
        state.followups = [Followup(key, at) for key, at in doc["f"]]
    if "lf" in doc:
        state.latest_followup = LatestFollowup(*doc["lf"])
    if "l" in doc:  # absent before login windows
        state.logins = _decode_logins(doc["l"])
    if "t" in doc:
        tags = state.tags
        for tag, (dimension, since, seq) in doc["t"].items():
            tags[tag] = TagState(dimension, since, seq)
    if "x" in doc:  # absent from states written before validity periods
        state.expired = set(doc["x"])
    if "r" in doc:
        state.recent_event_ids = _keys(doc["r"])
    return state


def _fingerprints(keys: list[int]) -> str:
    """6-byte fingerprints (``short_hash``), concatenated big-endian, in base64."""
    return _base64([key.to_bytes(6, "big") for key in keys])


def _base64(parts: list[bytes]) -> str:
    # binascii directly: base64.b64encode is a Python wrapper around it, and this runs per state.
    return binascii.b2a_base64(b"".join(parts), newline=False).decode()


def _keys(blob: str) -> list[int]:
    """The fingerprints of a ``_fingerprints`` blob, in order."""
    raw = binascii.a2b_base64(blob)
    from_bytes = int.from_bytes  # big-endian by default (Python 3.11+)
    return [from_bytes(raw[i : i + 6]) for i in range(0, len(raw), 6)]


class _Memo:
    """The encoded form of customers' long login lists, reused while a list holds the very same
    ``Login`` objects (a customer with 1,000 logins costs ~0.2 ms to encode, and a bot is in
    nearly every batch; comparing identities costs a few microseconds). States decoded afresh hold
    new objects, so they miss, as they should. Logins are never changed in place (a new login is a
    new object, and ``settle`` builds a new list), which is what makes identity enough.

    Bounded by the number of logins held (least recently used customers go first)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._entries: OrderedDict[str, tuple[list[Login], orjson.Fragment]] = OrderedDict()

    def get(self, customer_id: str, logins: list[Login]) -> orjson.Fragment | None:
        entry = self._entries.get(customer_id)
        if entry is None or len(entry[0]) != len(logins) or not all(map(is_, entry[0], logins)):
            return None
        self._entries.move_to_end(customer_id)
        return entry[1]

    def put(self, customer_id: str, logins: list[Login], encoded: orjson.Fragment) -> orjson.Fragment:
        old = self._entries.pop(customer_id, None)
        if old is not None:
            self.size -= len(old[0])
        self._entries[customer_id] = (list(logins), encoded)  # a copy: the state's list changes
        self.size += len(logins)
        while self.size > self.budget:
            _, (gone, _) = self._entries.popitem(last=False)
            self.size -= len(gone)
        return encoded


_MEMO_FROM = 16  # logins: below this, encoding costs about as much as the memo's upkeep
_LOGINS = _Memo(budget=100_000)  # logins held, ~15 MB at most


def _logins_field(customer_id: str, logins: list[Login]) -> object:
    if len(logins) < _MEMO_FROM:
        return _encode_logins(logins)
    encoded = _LOGINS.get(customer_id, logins)
    if encoded is None:  # kept as JSON already: orjson copies it into the state as it is
        encoded = _LOGINS.put(customer_id, logins, orjson.Fragment(orjson.dumps(_encode_logins(logins))))
    return encoded


def _encode_logins(logins: list[Login]) -> list[object]:
    """Up to a thousand logins, compactly: their keys as one base64 blob of 6-byte fingerprints,
    their times as differences from the previous one (sorted, so small numbers) in whole seconds
    when they all are (producers mostly send seconds; microseconds otherwise: times stay exact), and
    their channels as indexes into the list of distinct channels (0: none), left out when no login
    has one. ``[keys, unit, times]`` or ``[keys, unit, times, channels, indexes]``."""
    if len(logins) == 1:  # most customers who log in at all (58% of them in the backfill bench)
        login = logins[0]
        blob = _base64([login.key.to_bytes(6, "big")])
        single: list[object] = [blob, 1, [login.at]] if login.at % SECOND else [blob, SECOND, [login.at // SECOND]]
        return single if login.channel is None else [*single, [login.channel], [1]]
    # One pass gathers everything: most lists are short, so the fixed cost of each extra
    # comprehension would dominate.
    keys, times = [], []
    previous = fraction = 0
    named = False
    for login in logins:
        keys.append(login.key.to_bytes(6, "big"))
        times.append(login.at - previous)  # the first one minus 0: itself
        previous = login.at
        fraction |= login.at % SECOND  # the differences are whole seconds iff the times are
        named = named or login.channel is not None
    blob = _base64(keys)
    encoded: list[object] = [blob, 1, times] if fraction else [blob, SECOND, [t // SECOND for t in times]]
    if named:
        channels = sorted({login.channel for login in logins if login.channel is not None})
        index: dict[str | None, int] = {None: 0}
        index.update(zip(channels, range(1, len(channels) + 1), strict=True))
        encoded += [channels, [index[login.channel] for login in logins]]
    return encoded


def _decode_logins(encoded: list[Any]) -> list[Login]:
    keys = _keys(encoded[0])
    unit = encoded[1]
    moments = list(accumulate(encoded[2])) if unit == 1 else [t * unit for t in accumulate(encoded[2])]
    if len(encoded) > 3:
        names: list[str | None] = [None, *encoded[3]]
        channels: list[str | None] = [names[i] for i in encoded[4]]
    else:
        channels = [None] * len(keys)
    if not len(keys) == len(moments) == len(channels):
        raise ValueError(f"corrupt logins: {len(keys)} keys, {len(moments)} times, {len(channels)} channels")
    return list(map(Login, keys, moments, channels))


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
