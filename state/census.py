"""How many customers a partition has, in all and per source channel: counts the cockpit shows,
kept up by every batch instead of scanning every customer for each look."""

from __future__ import annotations

from collections import Counter

UNKNOWN_CHANNEL = ""
"""The channel of a customer whose profile has not named one."""


class Census:
    __slots__ = ("channels", "customers")

    def __init__(self) -> None:
        self.customers = 0
        self.channels: Counter[str] = Counter()

    def count(self, channel: str | None) -> None:
        """One more customer (a new one, or one found when the partition is indexed)."""
        self.customers += 1
        self.channels[channel or UNKNOWN_CHANNEL] += 1

    def moved(self, before: str | None, after: str | None) -> None:
        """A customer's profile changed its source channel."""
        if before != after:
            self.channels[before or UNKNOWN_CHANNEL] -= 1
            self.channels[after or UNKNOWN_CHANNEL] += 1
