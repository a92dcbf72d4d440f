"""The vocabulary a catalog's conditions can use: facts about a customer at a moment.

Each fact has a type (checked when a catalog is loaded) and a getter over ``CustomerState``.
Sliding-window aggregates are functions of a window length (``spend(180d)``); they count the
elements whose age is below the window, so ``paid_orders(90d)`` is "paid orders over 90 days".
Everything here is pure: given a state and "now", the same values.
"""

from __future__ import annotations

from calendar import isleap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Protocol

from state.customer import CustomerState, Order
from state.events import STAGES, FollowupEvent, LoginEvent, OrderEvent, ProfileEvent
from state.times import local_midnight, local_time

# Types of the expression language.
BOOL = "bool"
NUMBER = "number"
DURATION = "duration"
TIME = "time"
STRING = "string"
STRINGS = "list"  # a literal list of strings, for `x in ["a", "b"]`
NUMBERS = "numbers"  # a literal list of numbers, for `weekday(t) in [6, 7]`
TAGSET = "tagset"  # the tags of a non-exclusive dimension


EventKind = type[OrderEvent] | type[LoginEvent] | type[FollowupEvent] | type[ProfileEvent]
ORDERS: tuple[EventKind, ...] = (OrderEvent,)
ACTIVITY: tuple[EventKind, ...] = (OrderEvent, LoginEvent)
FOLLOWUPS: tuple[EventKind, ...] = (FollowupEvent,)
LOGINS: tuple[EventKind, ...] = (LoginEvent,)
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
    # A fact of the calendar: ``get`` reads what the state holds (what events change), and the
    # value is ``clock(get(state), now, zone)``; ``changes`` gives the next moment it becomes one of
    # some values (or changes at all, for None), for the engine's deadlines.
    clock: Callable[[object, int, tzinfo], object] | None = None
    changes: Callable[[object, int, tzinfo, frozenset[int] | None], int | None] | None = None


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
    "days_to_birthday": Fact(
        NUMBER, lambda s: s.birthday,
        "days until the next birthday in the catalog's time zone: 0 on the day, null without a birthday; "
        "29 February falls on 1 March in other years",
        changed_by=PROFILE, clock=lambda b, now, zone: days_to_birthday(b, now, zone),
        changes=lambda b, now, zone, values: birthday_changes(b, now, zone, values)),
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
    # It takes an optional second argument, a channel: ``logins(30d, "app")`` counts the elements
    # whose ``channel`` is that one.
    by_channel: bool = False
    # A window (itself within none) whose elements include all of this one's: an element leaving
    # this window leaves that one at the same moment, so next to it this one adds no deadline.
    # tests/rules/test_facts.py checks the inclusion on generated customers.
    within: str | None = None


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
        within="paid_orders",
    ),
    "new_product_orders": Window(
        lambda s: [o for o in _paid(s) if o.new_product],
        _count,
        "paid orders within the window with at least one new-product item",
        ORDERS,
        within="paid_orders",
    ),
    "followups": Window(lambda s: s.followups, _count, "follow-ups within the window", FOLLOWUPS),
    "logins": Window(
        lambda s: s.logins,
        _count,
        "logins within the window (at most the newest 1000 of 365 days); logins(D, \"app\"): those through "
        "that channel",
        LOGINS,
        by_channel=True,
    ),
}


def of_channel(items: Sequence[Timed], channel: str) -> list[Timed]:
    """The logins (elements with a ``channel``) through one channel."""
    return [item for item in items if getattr(item, "channel", None) == channel]


def in_window(items: Sequence[Timed], now: int, window: int) -> list[Timed]:
    """Elements whose age (now - at) is below the window: "over N days" means age < N days."""
    return [item for item in items if now - item.at < window]


def window_deadline(items: Sequence[Timed], now: int, window: int) -> int | None:
    """The next moment one of these elements leaves the window, if any. Elements are in time order
    (``state/customer.py`` keeps them so): the oldest one still inside is the first to leave."""
    for item in items:
        if item.at + window > now:
            return item.at + window
    return None


Elements = Callable[[CustomerState], Sequence[Timed]]


def deadline_windows(windows: Iterable[tuple[str, int]]) -> tuple[tuple[Elements, tuple[int, ...]], ...]:
    """The window lengths a customer's next deadline must look at, grouped by the elements they
    count, so that each list of elements is built once (``spend`` and ``paid_orders`` count the
    same orders). A window within another of the same length is left out: its elements leave at
    moments the wider one already gives."""
    lengths: dict[Elements, set[int]] = {}
    for name, length in windows:
        lengths.setdefault(WINDOWS[name].elements, set()).add(length)
    counted = {(elements, length) for elements, found in lengths.items() for length in found}
    for name, length in windows:
        wider = WINDOWS[name].within
        if wider is not None and (WINDOWS[wider].elements, length) in counted:
            lengths[WINDOWS[name].elements].discard(length)
    return tuple((elements, tuple(sorted(found))) for elements, found in lengths.items() if found)


# --------------------------------------------------------------------------------------------
# Facts of the calendar: values that change with "now" (at local midnights), not only with events


def next_birthday(birthday: str, today: date) -> date:
    """The next day on or after ``today`` that is the birthday ``"MM-DD"``. A 29 February birthday
    falls on 1 March in a year without one (the day after 28 February, as most civil rules have it)."""
    month, day = int(birthday[:2]), int(birthday[3:])
    for year in (today.year, today.year + 1):
        leap_day_missing = month == 2 and day == 29 and not isleap(year)
        candidate = date(year, 3, 1) if leap_day_missing else date(year, month, day)
        if candidate >= today:
            return candidate
    raise AssertionError("a birthday recurs within a year")  # pragma: no cover


def days_to_birthday(birthday: object, now: int, zone: tzinfo) -> int | None:
    """Whole days from today (in ``zone``) to the next birthday: 0 on the day, null without one."""
    if not isinstance(birthday, str):
        return None
    today = local_time(now, zone).date()
    return (next_birthday(birthday, today) - today).days


def birthday_changes(birthday: object, now: int, zone: tzinfo, values: frozenset[int] | None) -> int | None:
    """The first local midnight after ``now`` at which ``days_to_birthday`` becomes one of ``values``,
    or leaves 0 (the day after the birthday, when it jumps back to about 365). ``None``: at the next
    midnight, whatever the value (a catalog that computes with it can observe every change)."""
    if not isinstance(birthday, str):
        return None
    today = local_time(now, zone).date()
    if values is None:
        return local_midnight(today + timedelta(days=1), zone)
    coming = next_birthday(birthday, today)
    after = next_birthday(birthday, coming + timedelta(days=1))
    days = [coming + timedelta(days=1)]
    days += [b - timedelta(days=v) for v in values if v >= 0 for b in (coming, after)]
    return local_midnight(min(d for d in days if d > today), zone)


LOCAL_PARTS: dict[str, Callable[[datetime], int]] = {
    "weekday": lambda moment: moment.isoweekday(),  # 1 Monday .. 7 Sunday (ISO 8601)
    "hour": lambda moment: moment.hour,  # 0 .. 23
}
"""Parts of a moment read on the wall clock of the catalog's time zone. They depend only on the
moment, not on "now": a condition on them changes only when the moment (an event) does."""


def local_part(part: str, moment: object, zone: tzinfo) -> int | None:
    """``weekday`` or ``hour`` of a moment in ``zone``; null for a missing moment."""
    if not isinstance(moment, int):
        return None
    return LOCAL_PARTS[part](local_time(moment, zone))


@dataclass(frozen=True, slots=True)
class Function:
    """A function of the language other than the windows, as the vocabulary lists it."""

    signature: str
    type: str
    doc: str


FUNCTIONS: dict[str, Function] = {
    "age": Function("age(t)", DURATION, "now minus the time fact t; compared only with a constant duration"),
    "weekday": Function("weekday(t)", NUMBER, "day of the week of the time t in the catalog's time zone: "
                        "1 Monday .. 7 Sunday"),
    "hour": Function("hour(t)", NUMBER, "hour of the time t in the catalog's time zone: 0 .. 23"),
}
