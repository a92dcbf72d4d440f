"""A customer's tag history: one interval per stay in a tag, folded from its stored steps.

Each tag change of a customer is stored once, as a ``Step`` (the change as the history needs it),
under a key of its own: writing the history of a batch is appending its steps, never reading and
rewriting what came before. Reading folds the customer's steps, in ``seq`` order, into intervals:
one opens with the step that entered a tag and closes with the step that left it (``left`` is None
while the tag is held). The same fold over the ``tag-changes`` topic rebuilds it.

Retention: the last ``KEEP_STEPS`` steps of each customer (the step ``KEEP_STEPS`` before a new one
is deleted with it). That is at least 1,000 intervals, which covers "the last 365 days or the last
100 intervals, whichever is more" for any customer whose tags change fewer than 2,000 times a year.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

KEEP_STEPS = 2000


@dataclass(frozen=True, slots=True)
class Edge:
    """The change at one end of an interval."""

    seq: int
    at: int  # the change's effective time
    rule_id: str
    trigger: str
    catalog_version: str
    reason: dict[str, object]


@dataclass(frozen=True, slots=True)
class Step:
    """One tag change of a customer, as its history keeps it."""

    dimension: str
    from_tag: str | None
    to_tag: str | None
    edge: Edge
    expired: bool  # the tag left was removed at the end of its validity period


@dataclass(slots=True)
class Interval:
    tag: str
    dimension: str
    entered: Edge
    left: Edge | None = None
    expired: bool = False  # left because its validity period ran out


def fold(steps: Iterable[Step]) -> list[Interval]:
    """The intervals of these steps (taken in ``seq`` order), newest first.

    A step leaving a tag whose entry is no longer kept closes nothing: that stay is forgotten.
    """
    intervals: list[Interval] = []
    open_: dict[str, Interval] = {}
    for step in sorted(steps, key=lambda s: s.edge.seq):
        if step.from_tag is not None and step.from_tag in open_:
            closed = open_.pop(step.from_tag)
            closed.left, closed.expired = step.edge, step.expired
        if step.to_tag is not None:
            open_[step.to_tag] = Interval(step.to_tag, step.dimension, step.edge)
            intervals.append(open_[step.to_tag])
    intervals.reverse()
    return intervals


def page(
    history: list[Interval], tag: str | None, dimension: str | None, after_seq: int | None, limit: int
) -> tuple[list[Interval], int | None]:
    """Up to ``limit`` intervals, newest first, entered before ``after_seq`` (a cursor: the
    entering seq of the last interval of the previous page); and the next cursor, or None."""
    selected = [
        interval
        for interval in history
        if (tag is None or interval.tag == tag)
        and (dimension is None or interval.dimension == dimension)
        and (after_seq is None or interval.entered.seq < after_seq)
    ]
    chosen = selected[:limit]
    return chosen, chosen[-1].entered.seq if len(selected) > limit else None
