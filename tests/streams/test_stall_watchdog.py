"""The stall watchdog: a partition with records waiting and no progress is stalled, unless its
next records are already fetched and only wait for a busy worker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition

import streams.stall_watchdog as watchdog_module
from streams.stall_watchdog import StallWatchdog

ORDERS = TopicPartition("x-orders", 0)


def consumer(buffered: dict[Any, object]) -> Any:
    """A stand-in for Faust's consumer: one input partition read up to offset 9 of 20."""
    fetcher = SimpleNamespace(_records=buffered)
    return SimpleNamespace(
        _read_offset={ORDERS: 9}, _committed_offset={}, assignment=lambda: [ORDERS],
        highwater=lambda tp: 20, _thread=SimpleNamespace(_consumer=SimpleNamespace(_fetcher=fetcher)),
    )


def test_a_partition_without_progress_and_nothing_fetched_is_stalled(monkeypatch: Any) -> None:
    monkeypatch.setattr(watchdog_module, "STALL_SECONDS", 0.0)
    dog = StallWatchdog(consumer({}), {"x-orders"})
    assert dog.stalled() == []  # first look: progress noted
    assert dog.stalled() == [ORDERS]
    assert dog.last_stalled == [ORDERS]


def test_a_partition_whose_records_wait_in_the_fetch_buffer_is_only_queued(monkeypatch: Any) -> None:
    monkeypatch.setattr(watchdog_module, "STALL_SECONDS", 0.0)
    dog = StallWatchdog(consumer({ORDERS: object()}), {"x-orders"})
    dog.stalled()
    assert dog.stalled() == []
