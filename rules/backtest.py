"""Backtests: how a catalog would have behaved over past events, bucket by bucket.

A replay's results are folded into the same audience figures the workers keep (holders at each
bucket end, entered and left within it, ``state/audience.py``) plus the tasks the changes created,
per tag. Two backtests of the same events under two catalogs compare row by row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rules.catalog import Catalog
from rules.engine import Result
from state.audience import Audience


@dataclass(frozen=True, slots=True)
class Row:
    """One tag in one bucket: holders at its end, entries and exits and tasks created within."""

    bucket_end: int
    tag: str
    holders: int
    entered: int
    left: int
    tasks: int


class Backtest:
    def __init__(self, catalog: Catalog) -> None:
        self.tags = [tag.name for dimension in catalog.dimensions for tag in dimension.tags]
        self.audience = Audience()
        self.tasks: Counter[tuple[str, int]] = Counter()  # (tag, created_at) -> tasks
        self.first: int | None = None  # the earliest effective time seen
        self.changes = 0

    def add(self, result: Result) -> None:
        entered = {}
        for change in result.changes:
            self.audience.move(change.from_tag, change.to_tag, change.effective_at)
            if change.to_tag is not None:
                entered[change.change_id] = change.to_tag
            if self.first is None or change.effective_at < self.first:
                self.first = change.effective_at
        self.changes += len(result.changes)
        for task in result.tasks:
            self.tasks[(entered[task.change_id], task.created_at)] += 1

    def rows(self, start: int, end: int, step: int) -> list[Row]:
        """Every tag of the catalog in every bucket of ``step`` overlapping [start, end)."""
        tasks: Counter[tuple[str, int]] = Counter()
        for (tag, created_at), count in self.tasks.items():
            tasks[(tag, (created_at // step + 1) * step)] += count
        rows = []
        for tag in self.tags:
            for point in self.audience.series(tag, start, end, step):
                rows.append(Row(point.end, tag, point.holders, point.entered, point.left, tasks[(tag, point.end)]))
        rows.sort(key=lambda row: row.bucket_end)  # stable: catalog order of tags within a bucket
        return rows


def compare(new: list[Row], old: list[Row]) -> list[tuple[Row, Row]]:
    """Rows of two backtests side by side, by bucket and tag; a tag one catalog lacks counts as
    zero there."""
    olds = {(row.bucket_end, row.tag): row for row in old}
    news = {(row.bucket_end, row.tag): row for row in new}
    keys = list(news) + [key for key in olds if key not in news]
    keys.sort(key=lambda key: key[0])  # stable: within a bucket, the new catalog's tags first
    return [(news.get(key) or _empty(*key), olds.get(key) or _empty(*key)) for key in keys]


def _empty(bucket_end: int, tag: str) -> Row:
    return Row(bucket_end, tag, 0, 0, 0, 0)
