"""Per-customer state: the few aggregates that answer every condition of a catalog.

The engine never keeps a customer's event history. It keeps:

- orders of the last 365 days (the refund window), one small record each, so that a refund can
  cancel its order and sliding windows up to 365 days can be counted exactly;
- older paid orders folded into two numbers (how many, and the earliest), which is all that
  "paid orders in total" and "first paid order" need once an order can no longer be refunded;
- follow-up timestamps of the last 365 days, and the latest follow-up;
- login timestamps and channels of the last 365 days, at most the newest ``MAX_LOGINS``;
- the latest activity, a few profile fields (phone and email only as "present" flags: the engine
  has no use for the values, so it does not hold them);
- the current tags, the change counter ``seq``, and the ids of the last few events for
  de-duplication;
- the tags that expired (held for their catalog's ``valid_for``) and whose condition has held ever
  since: such a tag is not entered again until its condition stops holding once.

``apply_event`` is pure bookkeeping: it changes the state for one event and says whether the event
was applied, was a duplicate, or must be rejected (a refund the engine cannot match).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from hashlib import blake2b

from state.events import Event, FollowupEvent, LoginEvent, OrderEvent, ProfileEvent
from state.times import DAY

RETENTION = 365 * DAY
"""How long orders and follow-ups are kept one by one: the refund window, and so the longest
sliding window a catalog may use."""

MAX_LOGINS = 1000
"""Logins kept one by one (within the 365-day retention): about three a day for a year. Beyond it
the oldest are dropped, so ``logins(D)`` counts at most this many; the bound keeps a bot's or a
heavy user's state a few kilobytes."""

REFUND_WINDOW = 365 * DAY
RECENT_EVENT_IDS = 16
"""De-duplication memory per customer. Aggregates are idempotent by construction where they can
be (orders by order id, follow-ups by event id, maxima); this ring catches re-deliveries of the
rest (profile upserts, logins) within the last few events of the customer."""


def short_hash(text: str) -> int:
    """A 48-bit fingerprint of an id: 6 bytes instead of up to 128 characters per remembered id.

    Collisions only matter between two ids of the same customer: with a few hundred ids kept per
    customer the chance is about 2**-33 per customer, small enough next to the state-size gain.
    """
    return int.from_bytes(blake2b(text.encode(), digest_size=6).digest(), "big")


@dataclass(slots=True)
class Order:
    """A paid order still inside the refund window."""

    key: int  # short_hash(order_id)
    at: int
    amount: Decimal
    discounted: bool
    new_product: bool
    refunded: bool = False


@dataclass(slots=True)
class Followup:
    key: int  # short_hash(event_id)
    at: int


@dataclass(slots=True)
class Login:
    """One login kept for ``logins(D)``. Never changed in place (a new login is a new object, and
    ``settle`` builds a new list): ``state/codec.py`` reuses a long list's encoding while the
    state holds the very same objects."""

    key: int  # short_hash(event_id): a re-delivered login is not counted twice
    at: int
    channel: str | None


@dataclass(slots=True)
class LatestFollowup:
    at: int
    stage: str
    rep_id: str


@dataclass(slots=True)
class TagState:
    """A tag a customer holds: in which dimension, since when, from which change."""

    dimension: str
    since: int
    seq: int


@dataclass(slots=True)
class CustomerState:
    customer_id: str
    orders: list[Order] = field(default_factory=list)
    settled_paid: int = 0
    settled_first_paid_at: int | None = None
    followups: list[Followup] = field(default_factory=list)
    latest_followup: LatestFollowup | None = None
    logins: list[Login] = field(default_factory=list)
    last_activity_at: int | None = None
    owner_rep: str | None = None
    source_channel: str | None = None
    registered_at: int | None = None
    birthday: str | None = None
    has_phone: bool = False
    has_email: bool = False
    tags: dict[str, TagState] = field(default_factory=dict)
    # Expired tags awaiting a new qualification (their condition seen false); usually empty.
    expired: set[str] = field(default_factory=set)
    seq: int = 0
    recent_event_ids: list[int] = field(default_factory=list)
    next_deadline: int | None = None
    catalog_version: str = ""

    # -- facts derived on demand (never stored: one source of truth) -------------------------

    def paid_orders_total(self) -> int:
        paid = self.settled_paid
        for order in self.orders:  # a loop: sum() over a generator costs more on these short lists
            if not order.refunded:
                paid += 1
        return paid

    def first_paid_at(self) -> int | None:
        first = self.settled_first_paid_at
        for order in self.orders:
            if not order.refunded and (first is None or order.at < first):
                first = order.at
        return first


class Outcome(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"


class RejectedEvent(Exception):
    """A valid event the state cannot accept (e.g. a refund of an order it never saw).

    ``reason`` is a short metric label; the event goes to dead letters with the message.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def apply_event(state: CustomerState, event: Event, now: int) -> Outcome:
    """Fold one validated event into the state, at engine time ``now``.

    Raises RejectedEvent before changing anything when the event cannot be accepted.
    """
    event_key = short_hash(event.event_id)
    if event_key in state.recent_event_ids:
        return Outcome.DUPLICATE
    if isinstance(event, OrderEvent):
        applied = _apply_order(state, event, now)
    elif isinstance(event, LoginEvent):
        applied = _apply_login(state, event, event_key, now)
    elif isinstance(event, FollowupEvent):
        applied = _apply_followup(state, event, event_key, now)
    else:
        _apply_profile(state, event)
        applied = True
    _remember(state, event_key)
    settle(state, now)
    return Outcome.APPLIED if applied else Outcome.DUPLICATE


def settle(state: CustomerState, now: int) -> None:
    """Fold orders and follow-ups that left the 365-day retention into the lifetime counters."""
    if state.orders and now - state.orders[0].at >= RETENTION:
        kept: list[Order] = []
        for order in state.orders:
            if now - order.at >= RETENTION:
                if not order.refunded:
                    _settle_paid(state, order.at)
            else:
                kept.append(order)
        state.orders = kept
    if state.followups and now - state.followups[0].at >= RETENTION:
        state.followups = [f for f in state.followups if now - f.at < RETENTION]
    if state.logins and now - state.logins[0].at >= RETENTION:
        state.logins = [login for login in state.logins if now - login.at < RETENTION]


def _apply_order(state: CustomerState, event: OrderEvent, now: int) -> bool:
    key = short_hash(event.order_id)
    known = next((o for o in state.orders if o.key == key), None)
    if event.status == "refunded":
        if known is None:
            raise RejectedEvent(
                "refund_unknown_order",
                f"refund of order {event.order_id!r}, which is unknown or older than the "
                "365-day refund window",
            )
        if event.occurred_at - known.at >= REFUND_WINDOW:
            raise RejectedEvent(
                "refund_window_passed",
                f"refund of order {event.order_id!r} comes 365 days or more after the order",
            )
    # A repeat (the same order paid twice, a producer retry with a new event id; or refunded
    # twice) changes nothing, not even the last activity: it is reported as a duplicate, so the
    # tags are not re-evaluated, and a moved last activity would leave them stale.
    if event.status == "refunded":
        assert known is not None
        if known.refunded:
            return False
        known.refunded = True
        state.last_activity_at = _latest(state.last_activity_at, event.occurred_at)
        return True
    if known is not None:
        return False
    state.last_activity_at = _latest(state.last_activity_at, event.occurred_at)
    if now - event.occurred_at >= RETENTION:
        # Arrived after its refund window closed: it can only count as a settled order.
        _settle_paid(state, event.occurred_at)
        return True
    order = Order(key, event.occurred_at, event.amount, event.discounted, event.has_new_product)
    _insert_sorted(state.orders, order)
    return True


def _apply_followup(state: CustomerState, event: FollowupEvent, key: int, now: int) -> bool:
    if any(f.key == key for f in state.followups):
        return False
    latest = state.latest_followup
    if latest is None or event.occurred_at >= latest.at:
        state.latest_followup = LatestFollowup(event.occurred_at, event.stage, event.rep_id)
    if now - event.occurred_at < RETENTION:
        _insert_sorted(state.followups, Followup(key, event.occurred_at))
    return True


def _apply_login(state: CustomerState, event: LoginEvent, key: int, now: int) -> bool:
    for login in state.logins:  # up to a thousand: a loop, not any() over a generator
        if login.key == key:
            return False
    state.last_activity_at = _latest(state.last_activity_at, event.occurred_at)
    if now - event.occurred_at < RETENTION:
        _insert_sorted(state.logins, Login(key, event.occurred_at, event.channel))
        if len(state.logins) > MAX_LOGINS:
            del state.logins[0]  # the oldest: windows end at the newest
    return True


def _apply_profile(state: CustomerState, event: ProfileEvent) -> None:
    for name, value in event.fields:
        if name == "phone":
            state.has_phone = value is not None
        elif name == "email":
            state.has_email = value is not None
        else:
            setattr(state, name, value)


def _settle_paid(state: CustomerState, at: int) -> None:
    state.settled_paid += 1
    first = state.settled_first_paid_at
    state.settled_first_paid_at = at if first is None else min(first, at)


def _insert_sorted(items: list[Order] | list[Followup] | list[Login], item: Order | Followup | Login) -> None:
    """Keep window lists ordered by time: pruning and deadlines then look at the head only.

    Events arrive almost in order, so the scan from the end is short.
    """
    index = len(items)
    while index > 0 and items[index - 1].at > item.at:
        index -= 1
    items.insert(index, item)  # type: ignore[arg-type]


def _remember(state: CustomerState, key: int) -> None:
    state.recent_event_ids.append(key)
    if len(state.recent_event_ids) > RECENT_EVENT_IDS:
        del state.recent_event_ids[0]


def _latest(current: int | None, candidate: int) -> int:
    return candidate if current is None or candidate > current else current
