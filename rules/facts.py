"""The vocabulary a catalog's conditions can use: facts about a customer at a moment.

Each fact has a type (checked when a catalog is loaded) and a getter over ``CustomerState``.
Sliding-window aggregates are functions of a window length (``spend(180d)``); they count the
elements whose age is below the window, so ``paid_orders(90d)`` is "paid orders over 90 days".
Everything here is pure: given a state and "now", the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from state.customer import CustomerState, Order
from state.events import STAGES, FollowupEvent, LoginEvent, OrderEvent, ProfileEvent

# Types of the expression language.
BOOL = "bool"
NUMBER = "number"
DURATION = "duration"
TIME = "time"
STRING = "string"
STRINGS = "list"  # a literal list of strings, for `x in ["a", "b"]`
TAGSET = "tagset"  # the tags of a non-exclusive dimension


EventKind = type[OrderEvent] | type[LoginEvent] | type[FollowupEvent] | type[ProfileEvent]
ORDERS: tuple[EventKind, ...] = (OrderEvent,)
ACTIVITY: tuple[EventKind, ...] = (OrderEvent, LoginEvent)
FOLLOWUPS: tuple[EventKind, ...] = (FollowupEvent,)
PROFILE: tuple[EventKind, ...] = (ProfileEvent,)


@dataclass(frozen=True, slots=True)
class Fact:
    type: str
    get: Callable[[CustomerState], object]
    doc: str
    # The only kinds of event whose application can change the value (tests/rules/test_facts.py
    # checks it on generated events): the engine re-decides only the dimensions such events can move.
    changed_by: tuple[EventKind, ...] = ()
    # Every value a string fact can take, when input validation limits it: comparing with anything
    # else is a typo the catalog checker refuses (``latest_stage == "qoted"``).
    domain: tuple[str, ...] = ()


def _latest_followup_at(s: CustomerState) -> int | None:
    return s.latest_followup.at if s.latest_followup else None


def _latest_stage(s: CustomerState) -> str | None:
    return s.latest_followup.stage if s.latest_followup else None


def _latest_rep(s: CustomerState) -> str | None:
    return s.latest_followup.rep_id if s.latest_followup else None


FACTS: dict[str, Fact] = {
    "paid_orders_total": Fact(
        NUMBER, CustomerState.paid_orders_total, "paid orders ever, refunded ones excluded", changed_by=ORDERS),
    "first_paid_order": Fact(
        TIME, CustomerState.first_paid_at, "time of the first paid (not refunded) order", changed_by=ORDERS),
    "last_activity": Fact(
        TIME, lambda s: s.last_activity_at, "latest login or order event (paid or refunded)", changed_by=ACTIVITY),
    "latest_followup": Fact(TIME, _latest_followup_at, "time of the latest follow-up", changed_by=FOLLOWUPS),
    "latest_stage": Fact(
        STRING, _latest_stage, "sales stage of the latest follow-up", changed_by=FOLLOWUPS, domain=STAGES),
    "latest_rep": Fact(STRING, _latest_rep, "rep_id of the latest follow-up", changed_by=FOLLOWUPS),
    "owner_rep": Fact(STRING, lambda s: s.owner_rep, "the profile's owner rep", changed_by=PROFILE),
    "source_channel": Fact(STRING, lambda s: s.source_channel, "the profile's source channel", changed_by=PROFILE),
    "registered_at": Fact(TIME, lambda s: s.registered_at, "the profile's registration time", changed_by=PROFILE),
    "birthday": Fact(STRING, lambda s: s.birthday, "the profile's birthday, MM-DD", changed_by=PROFILE),
    "has_phone": Fact(BOOL, lambda s: s.has_phone, "the profile has a phone number", changed_by=PROFILE),
    "has_email": Fact(BOOL, lambda s: s.has_email, "the profile has an email address", changed_by=PROFILE),
}


class Timed(Protocol):
    """A window element: an order or a follow-up, with its event time."""

    @property
    def at(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Window:
    """A sliding-window aggregate: which elements it looks at, and what it adds up."""

    elements: Callable[[CustomerState], Sequence[Timed]]
    value: Callable[[list[Timed]], int | Decimal]
    doc: str
    changed_by: tuple[EventKind, ...] = ()
    money: bool = False  # its value is an amount (explanations show 2 decimals)


def _paid(s: CustomerState) -> list[Order]:
    return [o for o in s.orders if not o.refunded]


def _count(items: list[Timed]) -> int:
    return len(items)


def _spend(items: list[Timed]) -> Decimal:
    return sum((o.amount for o in items if isinstance(o, Order)), Decimal(0))


WINDOWS: dict[str, Window] = {
    "paid_orders": Window(_paid, _count, "paid orders within the window", ORDERS),
    "spend": Window(_paid, _spend, "amount of paid orders within the window", ORDERS, money=True),
    "discounted_orders": Window(
        lambda s: [o for o in _paid(s) if o.discounted],
        _count,
        "paid orders within the window that used a coupon or had most items discounted",
        ORDERS,
    ),
    "new_product_orders": Window(
        lambda s: [o for o in _paid(s) if o.new_product],
        _count,
        "paid orders within the window with at least one new-product item",
        ORDERS,
    ),
    "followups": Window(lambda s: s.followups, _count, "follow-ups within the window", FOLLOWUPS),
}


def in_window(items: Sequence[Timed], now: int, window: int) -> list[Timed]:
    """Elements whose age (now - at) is below the window: "over N days" means age < N days."""
    return [item for item in items if now - item.at < window]


def window_deadline(items: Sequence[Timed], now: int, window: int) -> int | None:
    """The next moment one of these elements leaves the window, if any."""
    future = [item.at + window for item in items if item.at + window > now]
    return min(future) if future else None
