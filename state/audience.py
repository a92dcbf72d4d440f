"""Audiences over time: per tag, how many customers hold it, and how many entered and left it,
hour by hour.

An ``Audience`` covers the customers of one partition (the worker adds up its partitions, the API
adds up the workers: every figure here is additive). It keeps

- ``holders``: per tag, how many customers hold it now, and
- per hour, per tag, how many changes entered and left the tag, counted in the hour of the
  change's effective time (so a late event counts where it belongs, not when it arrived).

The holders at the end of any past bucket follow exactly: the holders now, minus the entries,
plus the exits, of every later hour. Nothing else is needed, not even a starting count, so hours
older than ``RETENTION`` are simply dropped. Hours are grouped by day for storage: one day of one
partition is one stored record (``day_document``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from state.times import DAY, HOUR

RETENTION = 400 * DAY
"""How far back the hourly figures are kept."""

STEPS = {"1h": HOUR, "1d": DAY}


@dataclass(frozen=True, slots=True)
class Point:
    """One bucket of an audience series: its end, the holders at that moment, the moves within."""

    end: int
    holders: int
    entered: int
    left: int


class Audience:
    __slots__ = ("_dirty", "days", "holders")

    def __init__(self) -> None:
        self.holders: Counter[str] = Counter()
        # day number -> tag -> [entered, left] * 24 (hour of the day)
        self.days: dict[int, dict[str, list[int]]] = {}
        self._dirty: set[int] = set()

    def move(self, from_tag: str | None, to_tag: str | None, at: int) -> None:
        """Count one tag change at effective time ``at``."""
        if from_tag is not None:
            self.holders[from_tag] -= 1
            self._bump(from_tag, at, 1)
        if to_tag is not None:
            self.holders[to_tag] += 1
            self._bump(to_tag, at, 0)

    def _bump(self, tag: str, at: int, column: int) -> None:
        day, hour = divmod(at // HOUR, 24)
        figures = self.days.get(day)
        if figures is None:
            figures = self.days[day] = {}
        counts = figures.get(tag)
        if counts is None:  # not setdefault(tag, [0] * 48): that would make a list per move
            counts = figures[tag] = [0] * 48
        counts[2 * hour + column] += 1
        self._dirty.add(day)

    def take_dirty(self) -> dict[int, dict[str, list[int]]]:
        """The days changed since the last call (to be stored), each with all its figures."""
        dirty = {day: self.days[day] for day in sorted(self._dirty) if day in self.days}
        self._dirty.clear()
        return dirty

    def prune(self, now: int) -> list[int]:
        """Forget days wholly older than the retention; returns them (to delete from storage)."""
        first_kept = (now - RETENTION) // DAY
        gone = [day for day in self.days if day < first_kept]
        for day in gone:
            del self.days[day]
        return gone

    def load_day(self, day: int, figures: dict[str, list[int]]) -> None:
        self.days[day] = figures

    def series(self, tag: str, start: int, end: int, step: int) -> list[Point]:
        """The buckets of ``step`` (a whole number of hours) that overlap [start, end), aligned on
        multiples of the step since the epoch, oldest first."""
        first, last = start // step, -(-end // step)
        moves: Counter[int] = Counter()  # bucket -> entered - left
        entered: Counter[int] = Counter()
        left: Counter[int] = Counter()
        later = 0  # entered - left after the last bucket
        for day, tags in self.days.items():
            counts = tags.get(tag)
            if counts is None:
                continue
            for hour in range(24):
                came, went = counts[2 * hour], counts[2 * hour + 1]
                if not came and not went:
                    continue
                bucket = (day * DAY + hour * HOUR) // step
                if bucket >= last:
                    later += came - went
                elif bucket >= first:
                    entered[bucket] += came
                    left[bucket] += went
                    moves[bucket] += came - went
        holders = self.holders.get(tag, 0) - later
        points = []
        for bucket in range(last - 1, first - 1, -1):
            points.append(Point((bucket + 1) * step, holders, entered[bucket], left[bucket]))
            holders -= moves[bucket]
        points.reverse()
        return points


def add_series(a: list[Point], b: list[Point]) -> list[Point]:
    """Two series of the same buckets, added (two partitions, two workers)."""
    if not a:
        return b
    return [
        Point(x.end, x.holders + y.holders, x.entered + y.entered, x.left + y.left) for x, y in zip(a, b, strict=True)
    ]
