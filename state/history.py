"""A customer's tag history: one interval per stay in a tag, kept bounded.

An interval opens with the change that entered the tag and closes with the change that left it
(``left`` is None while the tag is held). The history is a fold of the customer's tag changes in
``seq`` order, nothing more: the engine folds each batch's changes into it, and the same fold
over the ``tag-changes`` topic rebuilds it. Intervals are kept newest first, the order they are
read in.

Retention: every open interval, and of the closed ones at least the newest ``KEEP_INTERVALS`` or
those that closed within ``KEEP_FOR``, whichever is more, but never more than ``MAX_INTERVALS``
in all (a customer flapping in and out of a tag hundreds of times a year keeps the newest ones).
"""

from __future__ import annotations

from dataclasses import dataclass

from state.times import DAY

KEEP_INTERVALS = 100
KEEP_FOR = 365 * DAY
MAX_INTERVALS = 1000


@dataclass(frozen=True, slots=True)
class Edge:
    """The change at one end of an interval."""

    seq: int
    at: int  # the change's effective time
    rule_id: str
    trigger: str
    catalog_version: str
    reason: dict[str, object]


@dataclass(slots=True)
class Interval:
    tag: str
    dimension: str
    entered: Edge
    left: Edge | None = None
    expired: bool = False  # left because its validity period ran out


def enter(history: list[Interval], tag: str, dimension: str, edge: Edge) -> None:
    """Open an interval (newest first)."""
    history.insert(0, Interval(tag, dimension, edge))


def leave(history: list[Interval], tag: str, edge: Edge, expired: bool) -> None:
    """Close the open interval of ``tag``; a history pruned or started after it opened has
    none, and then there is nothing to close."""
    for interval in history:
        if interval.tag == tag and interval.left is None:
            interval.left = edge
            interval.expired = expired
            return


def prune(history: list[Interval], now: int) -> None:
    """Drop closed intervals beyond what the retention keeps (see the module docstring)."""
    if len(history) <= KEEP_INTERVALS:
        return
    kept: list[Interval] = []
    closed = 0
    for interval in history:  # newest first
        if interval.left is not None:
            closed += 1
            if closed > KEEP_INTERVALS and now - interval.left.at >= KEEP_FOR:
                continue
        kept.append(interval)
    history[:] = kept[:MAX_INTERVALS]


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
