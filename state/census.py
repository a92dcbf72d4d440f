"""How many customers a partition has, per source channel (and so in all): counts the cockpit
shows, kept up by every batch instead of scanning every customer for each look."""

from __future__ import annotations

from collections import Counter

UNKNOWN_CHANNEL = ""
"""The channel of a customer whose profile has not named one."""


class Census:
    __slots__ = ("channels",)

    def __init__(self) -> None:
        self.channels: Counter[str] = Counter()

    @property
    def customers(self) -> int:
        """Every customer is counted under exactly one channel."""
        return sum(self.channels.values())

    def count(self, channel: str | None) -> None:
        """One more customer (a new one, or one found when the partition is indexed)."""
        self.channels[channel or UNKNOWN_CHANNEL] += 1

    def moved(self, before: str | None, after: str | None) -> None:
        """A customer's profile changed its source channel."""
        if before != after:
            self.channels[before or UNKNOWN_CHANNEL] -= 1
            self.channels[after or UNKNOWN_CHANNEL] += 1
