"""Small builders for events, customers and engine runs: the one builders module of the tests.

Times are integer microseconds (``state.times``): ``day(30)`` is 30 days after ``T0``, and
``day(30) - 1`` is one microsecond before that. Events are of customer ``CUSTOMER`` and get fresh
ids unless others are given.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from decimal import Decimal
from functools import cache
from typing import Any

import orjson

from connectors.generator import demo_events
from rules.catalog import Catalog, load_default_catalog
from rules.engine import Result, TagChange, decide_tags, process_event
from rules.replay import Replay
from state.customer import CustomerState
from state.events import (
    Event,
    FollowupEvent,
    InvalidEvent,
    Item,
    LoginEvent,
    OrderEvent,
    ProfileEvent,
    parse_event,
)
from state.times import DAY, format_timestamp, parse_timestamp

T0 = parse_timestamp("2026-01-05T08:00:00Z")
CUSTOMER = "c1"
_ids = itertools.count(1)


def day(n: float) -> int:
    """``n`` days after T0, in microseconds (``n`` may be fractional)."""
    return T0 + round(n * DAY)


def _event_id(event_id: str | None) -> str:
    return event_id if event_id is not None else f"e{next(_ids)}"


def item(*, discounted: bool = False, new_product: bool = False, price: str = "10") -> Item:
    return Item(sku=f"sku{next(_ids)}", price=Decimal(price), discounted=discounted, new_product=new_product)


def order(
    at: int,
    amount: str | int = "100",
    *,
    order_id: str | None = None,
    coupon: bool = False,
    items: Iterable[Item] = (),
    new_product: bool = False,
    customer: str = CUSTOMER,
    event_id: str | None = None,
) -> OrderEvent:
    """A paid order of ``items`` (none by default); ``new_product`` adds a new-product item."""
    if new_product:
        items = (*items, item(new_product=True))
    return OrderEvent(
        event_id=_event_id(event_id),
        customer_id=customer,
        occurred_at=at,
        order_id=order_id if order_id is not None else f"o{next(_ids)}",
        amount=Decimal(str(amount)),
        currency="CNY",
        status="paid",
        coupon_used=coupon,
        items=tuple(items),
    )


def refund(paid: OrderEvent | str, at: int, *, customer: str = CUSTOMER, event_id: str | None = None) -> OrderEvent:
    """The refund of a paid order (given as its event, or its order id)."""
    order_id = paid if isinstance(paid, str) else paid.order_id
    amount = Decimal(0) if isinstance(paid, str) else paid.amount
    return OrderEvent(
        event_id=_event_id(event_id),
        customer_id=customer,
        occurred_at=at,
        order_id=order_id,
        amount=amount,
        currency="CNY",
        status="refunded",
        coupon_used=False,
        items=(),
    )


def login(at: int, *, channel: str | None = "app", customer: str = CUSTOMER, event_id: str | None = None) -> LoginEvent:
    return LoginEvent(event_id=_event_id(event_id), customer_id=customer, occurred_at=at, channel=channel)


def followup(
    at: int,
    stage: str = "contacted",
    *,
    rep: str = "rep1",
    customer: str = CUSTOMER,
    event_id: str | None = None,
) -> FollowupEvent:
    return FollowupEvent(
        event_id=_event_id(event_id),
        customer_id=customer,
        occurred_at=at,
        rep_id=rep,
        stage=stage,
        kind="call",
        note=None,
    )


def profile(at: int, *, customer: str = CUSTOMER, event_id: str | None = None, **fields: object) -> ProfileEvent:
    return ProfileEvent(
        event_id=_event_id(event_id),
        customer_id=customer,
        occurred_at=at,
        fields=tuple(fields.items()),
    )


def from_json(topic: str, value: dict[str, Any], received_at: int | None = None) -> Event:
    """An event the way the engine receives it: a JSON record through ``parse_event``."""
    now = received_at if received_at is not None else parse_timestamp(value["occurred_at"])
    return parse_event(topic, orjson.dumps(value), now)


def iso(at: int) -> str:
    return format_timestamp(at)


@cache
def default_catalog() -> Catalog:
    return load_default_catalog()


class Customer:
    """One customer driven through the engine in event time, the way a worker would.

    ``now`` is the largest event time seen so far; every event is processed at it, after the
    customer's deadlines up to it have fired. ``changes`` collects every change in order.
    """

    def __init__(self, *events: Event, catalog: Catalog | None = None, customer_id: str = CUSTOMER) -> None:
        self.catalog = catalog or default_catalog()
        self.state = CustomerState(customer_id)
        self.now: int | None = None
        self.results: list[Result] = []
        for event in events:
            self.send(event)

    def send(self, event: Event) -> Result:
        self.now = event.occurred_at if self.now is None else max(self.now, event.occurred_at)
        result = process_event(self.catalog, self.state, event, self.now)
        self.results.append(result)
        return result

    @property
    def changes(self) -> list[TagChange]:
        return [change for result in self.results for change in result.changes]

    def tags_at(self, now: int) -> dict[str, object]:
        """Each dimension's tags at ``now``, without changing the state."""
        return decide_tags(self.catalog, self.state, now)[0]

    def tag_at(self, dimension: str, now: int) -> object:
        return self.tags_at(now)[dimension]


def replay(*events: Event, until: int | None = None, catalog: Catalog | None = None) -> tuple[Replay, list[TagChange]]:
    """Run events through ``Replay`` (then fire deadlines up to ``until``); all changes in order."""
    runner = Replay(catalog or default_catalog())
    results: list[Result] = []
    for event in events:
        results += runner.apply(event)
    if until is not None:
        results += runner.advance(until)
    return runner, [change for result in results for change in result.changes]


def generated(count: int, customers: int, until: int) -> list[Event]:
    """``count`` valid demo events of ``customers`` customers over the 300 days before ``until``."""
    events: list[Event] = []
    for record in demo_events(customers, seed=3, start=until - 300 * DAY, step=300 * DAY // count, broken=0.0):
        try:
            events.append(parse_event(record.topic, record.value, until))
        except InvalidEvent:
            continue
        if len(events) == count:
            break
    return events


def moves(changes: Iterable[TagChange], dimension: str | None = None) -> list[tuple[str | None, str | None]]:
    """(from, to) of each change, optionally of one dimension only."""
    return [(c.from_tag, c.to_tag) for c in changes if dimension is None or c.dimension == dimension]
