"""The cache of decoded customer states: bounded, least recently used first out, per partition."""

from __future__ import annotations

from state.cache import StateCache
from state.customer import CustomerState


def test_the_least_recently_used_customer_leaves_first_when_the_cache_is_full() -> None:
    cache = StateCache(2)
    cache.put(0, CustomerState("a"))
    cache.put(0, CustomerState("b"))
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put(1, CustomerState("c"))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None


def test_dropping_partitions_keeps_only_the_customers_of_the_partitions_kept() -> None:
    cache = StateCache(10)
    for partition, customer in ((0, "a"), (1, "b"), (2, "c")):
        cache.put(partition, CustomerState(customer))
    assert cache.drop_partitions({1}) == 2
    assert len(cache) == 1 and cache.get("b") is not None


def test_a_cache_of_capacity_zero_keeps_nothing() -> None:
    cache = StateCache(0)
    cache.put(0, CustomerState("a"))
    assert cache.get("a") is None and len(cache) == 0
