"""Micro-benchmark of the hot path: one ``decide_tags`` call on the default catalog.

Guards changes to the compiled conditions (``rules/expr.py``), such as the explanation's
instrumented evaluation, which must cost the engine nothing. States come from a replay of the
deterministic demo events; the figure is the best of several timed passes over all of them
(the best pass is the least disturbed by other work on a shared machine).

    .venv/bin/python -m bench.decide_cost [EVENTS] [CUSTOMERS] [REPEATS]
"""

from __future__ import annotations

import io
import sys
import timeit

from connectors.generator import jsonl_lines
from rules.catalog import load_default_catalog
from rules.engine import decide_tags
from state.customer import CustomerState
from streams.cli import replay_lines


def final_states(events: int, customers: int) -> tuple[list[CustomerState], int]:
    """The customers after a replay of the demo events (its changes and complaints discarded)."""
    catalog = load_default_catalog()
    run = replay_lines(catalog, jsonl_lines(events, customers), "demo", io.StringIO(), lambda result, now: None)
    return list(run.replay.customers.values()), run.replay.now or 0


def per_call_us(states: list[CustomerState], now: int, repeats: int) -> float:
    """Best pass over every state, in microseconds per ``decide_tags`` call."""
    catalog = load_default_catalog()

    def one_pass() -> None:
        for state in states:
            decide_tags(catalog, state, now)

    best = min(timeit.repeat(one_pass, number=1, repeat=repeats))
    return best / len(states) * 1e6


def main(argv: list[str]) -> None:
    events = int(argv[0]) if argv else 40_000
    customers = int(argv[1]) if len(argv) > 1 else 4_000
    repeats = int(argv[2]) if len(argv) > 2 else 15
    states, now = final_states(events, customers)
    print(f"decide_tags: {per_call_us(states, now, repeats):.2f} us per call "
          f"(best of {repeats} passes over {len(states):,} states)")


if __name__ == "__main__":
    main(sys.argv[1:])
