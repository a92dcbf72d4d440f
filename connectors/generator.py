"""Demo and load events: realistic-looking orders, logins, follow-ups and profile updates.

``demo_events`` is a pure, seeded generator of ``(topic, value)`` pairs, used by the benchmarks
and tests; ``produce`` sends it to Kafka at a given rate with a progress line
(``tagengine generate``). A small share of events is deliberately broken (malformed JSON, unknown
stages, refunds of unknown orders, re-deliveries) so that dead letters and de-duplication show up
in a demo too.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer

from connectors.kafka_clients import start
from state.events import STAGES
from state.times import DAY, SECOND, format_timestamp, wall_clock

CHANNELS = ("web", "app", "mini_program", "store")
REPS = tuple(f"rep-{n:02d}" for n in range(1, 13))


@dataclass(slots=True)
class _Customer:
    customer_id: str
    orders: list[str] = field(default_factory=list)
    stage: int = -1  # index in STAGES of the current deal; -1: no follow-up yet
    profiled: bool = False
    order_cap: int | None = None  # paid orders this customer ever places (None: no limit)

    def may_order(self) -> bool:
        return self.order_cap is None or len(self.orders) < self.order_cap


@dataclass(frozen=True, slots=True)
class GeneratedRecord:
    topic: str
    key: bytes
    value: bytes


def demo_events(
    customers: int,
    seed: int = 7,
    start: int | None = None,
    step: int = 0,
    history: int = 0,
    broken: float = 0.01,
) -> Iterator[GeneratedRecord]:
    """An endless stream of events over ``customers`` customers.

    Event times start at ``start`` (default: the wall clock) and advance by ``step`` microseconds
    per event (0: each event takes the wall clock when generated); with ``history``, each event is
    back-dated by a random amount up to that many microseconds, which makes old, silent and dormant
    customers appear and exercises late (out-of-order) events.
    """
    rng = random.Random(seed)
    people = [_Customer(f"c{n:07d}", order_cap=_order_cap(n)) for n in range(1, customers + 1)]
    clock = start if start is not None else wall_clock()
    counter = 0
    last: GeneratedRecord | None = None
    while True:
        counter += 1
        clock = clock + step if step else (wall_clock() if start is None else clock)
        # Some customers are much busier than others, as in real shops: a tenth of the events go to
        # the busiest 1% of customers, the rest spread evenly.
        hot = max(1, len(people) // 100)
        person = people[rng.randrange(hot)] if rng.random() < 0.1 else rng.choice(people)
        at = clock - (rng.randrange(history) if history else 0)
        roll = rng.random()
        if last is not None and roll < broken / 3:
            yield last  # a re-delivery: same event id
            continue
        if roll < broken:
            yield GeneratedRecord("orders", person.customer_id.encode(), b'{"event_id": "broken", "amount": ')
            continue
        topic, value = _event(rng, person, counter, at)
        last = GeneratedRecord(topic, person.customer_id.encode(), orjson.dumps(value))
        yield last


def _order_cap(n: int) -> int | None:
    """As in a real shop, some customers never buy and some buy once or twice only; the others buy
    on. So every lifecycle stage keeps customers however long a demo runs, not only mature ones."""
    return {5: 0, 6: 0, 7: 2, 8: 2, 9: 2}.get(n % 10)


def _event(rng: random.Random, person: _Customer, counter: int, at: int) -> tuple[str, dict[str, object]]:
    base: dict[str, object] = {
        "event_id": f"e{counter:09d}-{rng.getrandbits(32):08x}",
        "customer_id": person.customer_id,
        "occurred_at": format_timestamp(at),
    }
    roll = rng.random()
    if not person.profiled or roll >= 0.93:
        # A customer's first event is the sign-up profile, so the cockpit's source-channel share
        # covers everyone from the start; later profile updates may name another channel.
        person.profiled = True
        return "customers", {**base, "owner_rep": rng.choice(REPS), "source_channel": rng.choice(CHANNELS)}
    if roll < 0.45 or (roll < 0.75 and not person.may_order()):
        return "logins", {**base, "channel": rng.choice(CHANNELS)}
    if roll < 0.75:
        return "orders", _order(rng, person, base)
    person.stage = _next_stage(rng, person.stage)
    return "followups", {
        **base,
        "rep_id": rng.choice(REPS),
        "stage": STAGES[person.stage],
        "kind": rng.choice(("call", "visit", "message", "email", "meeting")),
    }


_WON, _LOST = STAGES.index("won"), STAGES.index("lost")


def _next_stage(rng: random.Random, stage: int) -> int:
    """A deal moves forward a stage or two at a time, sometimes back one, until negotiation ends
    in won or lost; a closed deal stays closed until, now and then, a new lead starts another. So
    the deal funnel of a demo has customers at every step, as a sales team's would."""
    if stage < 0:
        return 0
    if stage in (_WON, _LOST):
        return 0 if rng.random() < 0.1 else stage
    if stage == _WON - 1:
        return rng.choice((stage, _WON, _WON, _LOST))
    return min(_WON - 1, max(0, stage + rng.choice((-1, 0, 1, 1, 2))))


def _order(rng: random.Random, person: _Customer, base: dict[str, object]) -> dict[str, object]:
    if person.orders and rng.random() < 0.08:
        return {**base, "order_id": rng.choice(person.orders), "amount": "0", "status": "refunded"}
    order_id = f"o-{base['event_id']}"
    person.orders = [*person.orders[-9:], order_id]
    items = [
        {
            "sku": f"sku-{rng.randrange(500)}",
            "price": round(rng.uniform(20, 900), 2),
            "discounted": rng.random() < 0.3,
            "new_product": rng.random() < 0.15,
        }
        for _ in range(rng.randrange(1, 4))
    ]
    amount = sum(item["price"] for item in items)  # type: ignore[misc]
    return {
        **base,
        "order_id": order_id,
        "amount": f"{amount:.2f}",
        "status": "paid",
        "coupon_used": rng.random() < 0.2,
        "items": items,
    }


async def produce(
    bootstrap: str,
    prefix: str,
    customers: int,
    rate: float,
    duration: float,
    history_days: float = 0,
    **client_options: object,
) -> int:
    """Send demo events at ``rate`` per second for ``duration`` seconds (0: until interrupted)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **client_options)
    await start(producer)
    events = demo_events(customers, seed=int(time.time()), history=int(history_days * DAY))
    sent = 0
    started = time.monotonic()
    next_report = started + 1
    try:
        for record in events:
            elapsed = time.monotonic() - started
            if duration and elapsed >= duration:
                break
            ahead = sent / rate - elapsed if rate else 0
            if ahead > 0:
                await asyncio.sleep(ahead)
            await producer.send(prefix + record.topic, record.value, key=record.key)
            sent += 1
            if time.monotonic() >= next_report:
                next_report += 1
                print(f"\rgenerated {sent} events ({sent / max(elapsed, 1e-9):.0f}/s)", end="", file=sys.stderr)
        await producer.flush()
    finally:
        await producer.stop()
        print(f"\rgenerated {sent} events in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return sent


def jsonl_lines(
    count: int, customers: int, seed: int = 7, start: int = 1_767_225_600 * SECOND, step: int = 600_000
) -> Iterator[bytes]:
    """``count`` replay input lines (``{"topic": ..., "value": ...}``), ``step`` apart (by default one
    simulated minute per 100 events, from 2026-01-01: a year of events for ``tagengine replay``
    benchmarks; ``tagengine generate --out`` writes a recent week)."""
    for record in _take(demo_events(customers, seed=seed, start=start, step=step, broken=0.001), count):
        try:
            value = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            value = record.value.decode()
        yield orjson.dumps({"topic": record.topic, "value": value})


def _take(iterator: Iterator[GeneratedRecord], count: int) -> Iterator[GeneratedRecord]:
    for index, item in enumerate(iterator):
        if index >= count:
            return
        yield item
