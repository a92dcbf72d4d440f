"""How often Python's cyclic garbage collector runs in the engine's processes.

The engine allocates a great many short-lived objects (decoded events, evaluation contexts,
messages) while holding a great many long-lived ones (the decoded states of ``state.cache``, the
deadline index, Faust's own structures). With CPython's default thresholds (700, 10, 10) a young
collection runs every 700 allocations and a full one every 70,000, and a full one walks every
live object: measured on the throughput benchmark's workloads through ``BatchProcessor`` with a
50,000-state cache, the collector took 2.4-2.5 s of every 13 s (about a fifth of the CPU), and 0.3-
0.5 s with the thresholds below. Cycles are still collected, only in larger steps.

``gc.freeze()`` moves what exists once the worker is built (modules, Faust, the catalog) out of
the collector's sight for good: it is never garbage, and full collections no longer walk it.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Allocations (less deallocations) between two young-generation collections (CPython: 700)."""


def tune() -> None:
    """Collect less often, and never look again at the objects made so far."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 100)
