"""How Python's cyclic garbage collector runs in the engine's processes.

The engine allocates a great many short-lived objects (decoded events, evaluation contexts,
messages) while holding a great many long-lived ones: the decoded states of ``state.cache``
(50,000 customers by default, about fifteen tracked objects each), the deadline index, Faust's
own structures. CPython's collector has two ways of hurting that:

- **Full collections** walk every live object: 0.6-1.0 s at a time with a full state cache,
  during which no event is processed. CPython starts one whenever the objects that survived two
  young collections grow by a quarter, which a state cache with turnover does every few seconds
  to minutes. Here full collections never start by themselves; ``collect_fully`` runs one on a
  schedule (the worker: every ``FULL_COLLECTION_EVERY`` seconds). What they would find is cyclic
  garbage that lived long enough to get old: measured on the worker at 4,000 events/s, 0-150
  objects per collection.
- **Young collections that are not young.** A young collection starts when allocations exceed
  deallocations by the first threshold; a state cache at capacity frees one state for each it
  takes, so with a large threshold (50,000 was tried) the young generation grew to 280,000 live
  objects and its collections paused for up to 390 ms. With CPython's order of thresholds (1,000
  and 10) the pauses stay under 10 ms (young) and 25 ms (middle), for the same total time
  (measured through ``BatchProcessor`` on 300,000 live events: 1.2 s of collection, against
  1.3 s with (50,000, 20) and automatic full collections).

``gc.freeze()`` moves what exists once the worker is built (modules, Faust, the catalog) out of
the collector's sight for good: it is never garbage, and full collections do not walk it.
Freezing again after every batch was tried (what outlives a batch is then not walked again by the
middle collections): through ``BatchProcessor`` on 300,000 live events, 1.20-1.35 s of collection
against 1.71-2.09 s. But the worker showed no difference, either in CPU at 6,500 events/s (median
0.70 of a core against 0.71, five alternating pairs) or in backlog rates (two pairs). So it was
not kept.
"""

from __future__ import annotations

import gc
import logging
import time

YOUNG_THRESHOLD = 1_000
"""Allocations (less deallocations) between two young collections (CPython: 700)."""
MIDDLE_THRESHOLD = 10
"""Young collections between two collections of the middle generation (CPython: 10)."""
NEVER = 2**31 - 1
"""As the third threshold: the oldest generation is collected only by ``collect_fully``."""
FULL_COLLECTION_EVERY = 3600.0
"""Seconds between two full collections in a worker: one pause of about a second an hour."""

log = logging.getLogger(__name__)


def tune() -> None:
    """Collect young objects in small steps, old ones only on request, and never look again at
    the objects made so far."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, NEVER)


def collect_fully() -> int:
    """One full collection, logged with its pause; returns the unreachable objects it found."""
    started = time.perf_counter()
    found = gc.collect()
    log.info("full garbage collection: %d unreachable objects, %.2f s", found, time.perf_counter() - started)
    return found
