"""streams.gc_policy: young objects are collected in small steps, old ones only on request."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams import gc_policy


@pytest.fixture
def tuned() -> Iterator[None]:
    before = gc.get_threshold()
    gc_policy.tune()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_the_oldest_generation_is_never_collected_by_itself(tuned: None) -> None:
    young, middle, oldest = gc.get_threshold()
    assert (young, middle) == (gc_policy.YOUNG_THRESHOLD, gc_policy.MIDDLE_THRESHOLD)
    assert oldest == gc_policy.NEVER


def test_what_exists_when_tuned_is_out_of_the_collectors_sight(tuned: None) -> None:
    assert gc.get_freeze_count() > 0


def test_a_full_collection_finds_old_cycles(tuned: None) -> None:
    first, second = Node(), Node()
    first.other, second.other = second, first
    gc.collect(1)
    gc.collect(1)  # both now in the oldest generation
    del first, second
    assert gc_policy.collect_fully() >= 2
