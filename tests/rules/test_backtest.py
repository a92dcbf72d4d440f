"""Backtests: rows per bucket and tag, and two catalogs side by side."""

from __future__ import annotations

from rules.backtest import Row, compare


def test_a_tag_only_one_catalog_has_counts_as_zero_in_the_other() -> None:
    new = [Row(10, "a", 1, 1, 0, 0), Row(10, "b", 2, 2, 0, 1)]
    old = [Row(10, "a", 1, 1, 0, 0), Row(10, "c", 5, 0, 0, 0)]
    assert compare(new, old) == [
        (Row(10, "a", 1, 1, 0, 0), Row(10, "a", 1, 1, 0, 0)),
        (Row(10, "b", 2, 2, 0, 1), Row(10, "b", 0, 0, 0, 0)),
        (Row(10, "c", 0, 0, 0, 0), Row(10, "c", 5, 0, 0, 0)),
    ]
