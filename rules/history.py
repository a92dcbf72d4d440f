"""A tag change as a customer's history keeps it (``state/history.py``): one home for turning the
engine's changes into history steps, for the worker and for rebuilding from ``tag-changes``."""

from __future__ import annotations

from rules.engine import EXPIRED, TagChange
from state.history import Edge, Step


def step_of(change: TagChange) -> Step:
    edge = Edge(change.seq, change.effective_at, change.rule_id, change.trigger, change.catalog_version, change.reason)
    return Step(change.dimension, change.from_tag, change.to_tag, edge, change.reason.get(EXPIRED) is True)
