"""Small event builders for the state tests (times are integer microseconds after T0)."""

from __future__ import annotations

import itertools
from decimal import Decimal

from state.events import FollowupEvent, Item, LoginEvent, OrderEvent, ProfileEvent
from state.times import DAY, parse_timestamp

T0 = parse_timestamp("2026-01-05T08:00:00Z")
_ids = itertools.count(1)


def day(n: float) -> int:
    return T0 + round(n * DAY)


def _id(event_id: str | None, prefix: str = "e") -> str:
    return event_id if event_id is not None else f"{prefix}{next(_ids)}"


def order(
    at: int,
    amount: str = "100",
    *,
    order_id: str | None = None,
    status: str = "paid",
    coupon: bool = False,
    new_product: bool = False,
    event_id: str | None = None,
) -> OrderEvent:
    items = (Item(sku="sku-1", price=Decimal(amount), discounted=False, new_product=new_product),)
    return OrderEvent(
        event_id=_id(event_id),
        customer_id="c1",
        occurred_at=at,
        order_id=_id(order_id, "o"),
        amount=Decimal(amount),
        currency="CNY",
        status=status,
        coupon_used=coupon,
        items=items,
    )


def refund(order_id: str, at: int, *, event_id: str | None = None) -> OrderEvent:
    return order(at, "0", order_id=order_id, status="refunded", event_id=event_id)


def login(at: int, *, event_id: str | None = None) -> LoginEvent:
    return LoginEvent(event_id=_id(event_id), customer_id="c1", occurred_at=at, channel="web")


def followup(at: int, stage: str = "contacted", *, rep: str = "rep1", event_id: str | None = None) -> FollowupEvent:
    return FollowupEvent(
        event_id=_id(event_id),
        customer_id="c1",
        occurred_at=at,
        rep_id=rep,
        stage=stage,
        kind=None,
        note=None,
    )


def profile(at: int, *, event_id: str | None = None, **fields: object) -> ProfileEvent:
    return ProfileEvent(event_id=_id(event_id), customer_id="c1", occurred_at=at, fields=tuple(fields.items()))
