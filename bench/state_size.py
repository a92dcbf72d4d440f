"""Per-customer state size: what one table entry (and one changelog record) weighs.

Sizes are of ``state.codec.encode_state``, the bytes the worker writes to its table and changelog
for every customer touched by a batch. Besides the replay's final states, two customers are built
by running events through the engine (so tags, deadlines and the de-duplication ring are real):
a "typical" one and a "heavy" one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from bench.common import percentile
from rules.catalog import Catalog
from rules.replay import Replay
from state.codec import encode_state
from state.customer import CustomerState
from state.events import Event, parse_event
from state.times import DAY, HOUR, format_timestamp

START = 1_767_225_600 * 1_000_000  # 2026-01-01T00:00:00Z, as the replay input


@dataclass(frozen=True, slots=True)
class SizeStats:
    customers: int
    median: float
    p90: float
    p99: float
    max: float
    largest_customer: str


def size_stats(states: Iterable[CustomerState]) -> SizeStats:
    sizes = sorted((len(encode_state(state)), state.customer_id) for state in states)
    values = [size for size, _ in sizes]
    return SizeStats(
        customers=len(values),
        median=percentile(values, 0.5),
        p90=percentile(values, 0.9),
        p99=percentile(values, 0.99),
        max=values[-1] if values else float("nan"),
        largest_customer=sizes[-1][1] if sizes else "-",
    )


# -- constructed customers --

# (event time, topic, fields other than the ids and the time)
Spec = tuple[int, str, dict[str, object]]


def typical_customer(catalog: Catalog) -> CustomerState:
    """Six orders over the last 180 days, logins, two follow-ups, a profile: four or five tags.

    More events than the de-duplication ring holds, so the ring is full.
    """
    now = START + 365 * DAY
    events: list[Spec] = [(now - 200 * DAY, "customers", {"owner_rep": "rep-03", "source_channel": "app"})]
    events += [(now - (170 - 30 * n) * DAY, "orders", _order(n)) for n in range(6)]
    events += [(now - n * 9 * DAY, "logins", {"channel": "app"}) for n in range(12, 0, -1)]
    events += [
        (now - 20 * DAY, "followups", {"rep_id": "rep-03", "stage": "contacted", "kind": "call"}),
        (now - 5 * DAY, "followups", {"rep_id": "rep-03", "stage": "proposal", "kind": "visit"}),
    ]
    return _build(catalog, "c-typical", sorted(events, key=lambda spec: spec[0]), now)


def heavy_customer(catalog: Catalog) -> CustomerState:
    """An order and a login every day for a year, a follow-up every week."""
    now = START + 365 * DAY
    events: list[Spec] = []
    for day in range(365):
        at = START + day * DAY + 10 * HOUR
        events.append((at - HOUR, "logins", {"channel": "web"}))
        events.append((at, "orders", _order(day)))
        if day % 7 == 0:
            events.append((at + HOUR, "followups", {"rep_id": "rep-05", "stage": "negotiating"}))
    return _build(catalog, "c-heavy", events, now)


def _order(n: int) -> dict[str, object]:
    items = [{"sku": f"sku-{n}-{i}", "price": 120.5, "discounted": i == 0, "new_product": n % 4 == 0}
             for i in range(3)]
    return {"order_id": f"o-{n}", "amount": "361.50", "status": "paid", "coupon_used": n % 5 == 0, "items": items}


def _build(catalog: Catalog, customer_id: str, events: list[Spec], now: int) -> CustomerState:
    """Run the events through the engine in event time, then let the clock reach ``now``."""
    replay = Replay(catalog)
    for event in _events(customer_id, events):
        for _ in replay.apply(event):
            pass
    for _ in replay.advance(now):
        pass
    return replay.customers[customer_id]


def _events(customer_id: str, events: list[Spec]) -> Iterator[Event]:
    for number, (at, topic, fields) in enumerate(events, start=1):
        value = {**fields, "event_id": f"{customer_id}-e{number}", "customer_id": customer_id,
                 "occurred_at": format_timestamp(at)}
        yield parse_event(topic, orjson.dumps(value), at)
