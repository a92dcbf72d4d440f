"""Small helpers shared by the benchmark sections: progress lines, statistics, the results list."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"

_STARTED = time.monotonic()


def progress(message: str) -> None:
    """A progress line on stderr, stamped with the seconds since the benchmark started."""
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (no interpolation: sizes are integers)."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


@dataclass(slots=True)
class Figure:
    """One line of the summary table."""

    section: str
    name: str
    value: float
    unit: str
    note: str = ""


@dataclass(slots=True)
class Results:
    figures: list[Figure] = field(default_factory=list)

    def add(self, section: str, name: str, value: float, unit: str, note: str = "") -> None:
        self.figures.append(Figure(section, name, value, unit, note))
        shown = f" ({note})" if note else ""
        print(f"{section:<8} {name:<44} {format_value(value):>14} {unit}{shown}", flush=True)

    def get(self, section: str, name: str) -> float | None:
        for figure in self.figures:
            if figure.section == section and figure.name == name:
                return figure.value
        return None

    def table(self) -> str:
        width = max((len(f.name) for f in self.figures), default=10)
        sections = max((len(f.section) for f in self.figures), default=8)
        lines = [f"{'section':<{sections}}  {'figure':<{width}}  {'value':>14}  unit", "-" * (width + sections + 32)]
        for f in self.figures:
            note = f"  ({f.note})" if f.note else ""
            lines.append(f"{f.section:<{sections}}  {f.name:<{width}}  {format_value(f.value):>14}  {f.unit}{note}")
        return "\n".join(lines)


def format_value(value: float) -> str:
    if value != value:  # NaN: not measured
        return "n/a"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    if abs(value) < 1:
        return f"{value:#.3g}"  # ratios: three significant digits, however small
    return f"{value:,.2f}"
