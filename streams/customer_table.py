"""The customer table: a Faust table whose writes the engine makes itself, a batch at a time.

Faust keeps what a table is for: one store per partition (RocksDB, or memory in tests), standby
copies, and recovery from the changelog topic after a restart, a kill -9 or a rebalance. What it
does per key (``table[k] = v``: one store put, one changelog send through its producer, the
partition taken from the current event) is replaced by ``write``: the states a batch changed are
written to a partition's store in one RocksDB write batch, together with the changelog offset
they reached, after ``streams/commit.py`` has written them to the changelog itself.

Each changelog record also carries, in its headers, the outputs (tag changes, tasks) the batch
produced for that customer: its *outbox*. After the outputs are delivered, a *marker* (a
tombstone of ``MARKER_KEY``) is written to the changelog partition. So every changelog record
after the last marker of its partition belongs to a batch whose outputs may not have arrived:
recovery collects their outboxes (``pending``), the worker sends them again before it processes
anything new, and the store never claims to hold more than the last confirmed point (so a restart
reads those records again).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from connectors.publisher import OutRecord

MARKER_KEY = b"\x00delivered"
"""Key of the changelog markers. No customer id starts with a NUL byte; as a tombstone it leaves
nothing in the store."""


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    """A changelog record written by a batch whose outputs may not all have been delivered."""

    offset: int
    key: bytes
    outbox: tuple[tuple[str, bytes], ...]  # (real topic name, message) pairs


class CustomerTable(faust.Table[bytes, bytes]):
    """``faust.Table`` of encoded customer states (bytes -> bytes), written a batch at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unconfirmed: dict[TP, list[Unconfirmed]] = {}

    # -- reads and writes by the engine --

    def read(self, partition: int, key: bytes) -> bytes | None:
        """A customer's encoded state from the store of its partition."""
        store = self.data
        if hasattr(store, "_db_for_partition"):
            value = store._db_for_partition(partition).get(key)
        else:
            value = store.data.get(key)
        return value if isinstance(value, bytes) else None

    def write(self, partition: int, states: dict[bytes, bytes], changelog_offset: int) -> None:
        """Store states already written to the changelog (up to ``changelog_offset``), atomically
        with that offset, so a restart reads the changelog from exactly there."""
        store: Any = self.data
        if not hasattr(store, "_db_for_partition"):  # memory store: nothing survives a restart anyway
            store.data.update(states)
            return
        import rocksdict  # only with the RocksDB store, which needs it

        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in states.items():
            batch.put(key, value)
        batch.put(store.offset_key, str(changelog_offset).encode())
        store._db_for_partition(partition).write(batch)

    def customers(self, partitions: Iterable[int]) -> Iterator[tuple[bytes, bytes]]:
        """Every (customer id, encoded state) in the local stores of these partitions (the memory
        store does not keep partitions apart: it yields every customer)."""
        store: Any = self.data
        if not hasattr(store, "_db_for_partition"):
            yield from store.data.items()
            return
        for partition in partitions:
            yield from store._visible_items(store._db_for_partition(partition))

    # -- recovery --

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        """Recovery (and standby) replay: note the outboxes of records after the last marker."""
        events = list(batch)
        for event in events:
            message = event.message
            if message.key == MARKER_KEY:
                self._unconfirmed.pop(message.tp, None)
            elif message.headers:
                self._unconfirmed.setdefault(message.tp, []).append(
                    Unconfirmed(message.offset, message.key, tuple((k, bytes(v)) for k, v in message.headers))
                )
        super().apply_changelog_batch(events)
        store = self.data
        for tp, records in self._unconfirmed.items():
            persisted = store.persisted_offset(tp)
            if records and persisted is not None and persisted >= records[0].offset:
                store.set_persisted_offset(tp, records[0].offset - 1)

    def take_unconfirmed(self, partitions: set[int]) -> list[OutRecord]:
        """The outputs of the unconfirmed records of these (now owned) partitions, to send again,
        oldest first; forgotten here once taken."""
        records = []
        for tp in [tp for tp in self._unconfirmed if tp.partition in partitions]:
            for unconfirmed in self._unconfirmed.pop(tp):
                records += [OutRecord(topic, unconfirmed.key, value) for topic, value in unconfirmed.outbox]
        return records

    def confirm(self, partitions: Iterable[int]) -> list[OutRecord]:
        """The markers saying everything written so far to these changelog partitions was delivered."""
        topic = self.changelog_topic_name
        return [OutRecord(topic, MARKER_KEY, None, partition) for partition in partitions]
