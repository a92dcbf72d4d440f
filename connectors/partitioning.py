"""Where a key lives: Kafka's default partitioner (murmur2), the one rule every part agrees on.

The input topics, the customer table's changelog and the outputs are all partitioned by customer
id with it, so the worker owning partition p owns the events and the whole state of p's customers.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=1 << 17)  # murmur2 is pure Python (7 µs a key); busy customers come back often
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
