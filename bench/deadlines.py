"""Deadline index and catalog re-evaluation, measured without Kafka (issues 3 and 4).

- memory of the per-partition deadline index, per customer (tracemalloc around building it);
- time to rebuild the index for N customers from encoded states, as a worker does on partition
  assignment (``BatchProcessor.rebuild``: it reads two fields of each state, not the whole state);
- time to re-evaluate N customers under a new catalog (decode, ``reevaluate``, encode), which is
  the work a catalog change costs, however the worker spreads it over ticks.
"""

from __future__ import annotations

import time
import tracemalloc

from bench.common import Results, progress
from rules.catalog import load_default_catalog, parse_catalog
from rules.engine import process_event, reevaluate
from state.codec import decode_state, encode_state
from state.customer import CustomerState
from state.deadlines import DeadlineIndex
from state.events import LoginEvent, OrderEvent
from state.times import DAY
from streams.processor import BatchProcessor

START = 1_767_225_600_000_000  # 2026-01-01


def _states(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` encoded customers: an order and a login each, at spread times (deadlines differ)."""
    catalog = load_default_catalog()
    template = CustomerState("template")
    from decimal import Decimal

    order = OrderEvent("e1", "template", START, "o1", Decimal("120.50"), "CNY", "paid", False, ())
    process_event(catalog, template, order, START)
    process_event(catalog, template, LoginEvent("e2", "template", START + DAY, "app"), START + DAY)
    encoded = encode_state(template)
    pairs = []
    for n in range(count):
        customer = f"c{n:08d}"
        # Same shape, own id and own times: substitute in the bytes (much faster than evaluating).
        shift = str(START + (n % 86_400) * 1_000_000)
        pairs.append((customer.encode(), encoded.replace(b"template", customer.encode()).replace(
            str(START).encode(), shift.encode())))
    return pairs


def run(results: Results, customers: int) -> None:
    progress(f"deadlines: building {customers:,} encoded customers")
    pairs = _states(customers)

    progress("deadlines: index memory")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = DeadlineIndex()
    for n, (key, _) in enumerate(pairs):
        index.set(key.decode(), START + n)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    results.add("timers", "deadline index memory per customer", used / customers, "bytes",
                f"heap + dict, {customers:,} customers")
    del index

    progress(f"deadlines: rebuilding the index of {customers:,} customers")
    processor = BatchProcessor(load_default_catalog(), 8, lambda p, k: None)
    started = time.perf_counter()
    indexed = processor.rebuild(set(range(8)), pairs)
    seconds = time.perf_counter() - started
    assert indexed == customers
    results.add("timers", f"index rebuild, {customers:,} customers", seconds, "s",
                f"{customers / seconds:,.0f} customers/s")

    new_catalog = parse_catalog(load_default_catalog_bytes().replace(b"5000", b"4000"), "bench")
    sample = pairs[: min(customers, 200_000)]
    progress(f"deadlines: re-evaluating {len(sample):,} customers under a changed catalog")
    now = START + 40 * DAY
    started = time.perf_counter()
    for _, encoded in sample:
        state = decode_state(encoded)
        reevaluate(new_catalog, state, now)
        encode_state(state)
    seconds = time.perf_counter() - started
    per = seconds / len(sample)
    results.add("catalog", "re-evaluate one customer (decode+eval+encode)", per * 1e6, "us")
    results.add("catalog", "re-evaluate 1M customers, engine work", per * 1_000_000, "s",
                f"from {len(sample):,} measured; one core, before Kafka writes")


def load_default_catalog_bytes() -> bytes:
    from rules.catalog import default_catalog_path

    return default_catalog_path().read_bytes()
