"""Folding tag changes into a customer's history (``state/history.py``): the one fold the engine
applies to each batch, and that rebuilds a history from the ``tag-changes`` topic."""

from __future__ import annotations

from collections.abc import Iterable

from rules.engine import EXPIRED, TagChange
from state.history import Edge, Interval, enter, leave, prune


def fold_changes(history: list[Interval], changes: Iterable[TagChange], now: int) -> None:
    """Apply one customer's changes, in ``seq`` order, then the retention at ``now``."""
    for change in changes:
        edge = Edge(change.seq, change.effective_at, change.rule_id, change.trigger, change.catalog_version,
                    change.reason)
        if change.from_tag is not None:
            leave(history, change.from_tag, edge, expired=change.reason.get(EXPIRED) is True)
        if change.to_tag is not None:
            enter(history, change.to_tag, change.dimension, edge)
    prune(history, now)
