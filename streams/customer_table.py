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
from state.codec import is_customer_key

MARKER_KEY = b"\x00delivered"
"""Key of the changelog markers. No customer id starts with a NUL byte; as a tombstone it leaves
nothing in the store."""


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    """A changelog record written by a batch whose outputs may not all have been delivered."""

    offset: int
    key: bytes
    outbox: tuple[tuple[str, bytes], ...]  # (real topic name, message) pairs


Entries = dict[bytes, bytes | None]
"""Table writes of one partition: key -> value, None to delete."""


class CustomerTable(faust.Table[bytes, bytes]):
    """``faust.Table`` of the engine's entries (bytes -> bytes: customer states, their histories,
    audience figures; ``state/codec.py`` names the keys), written a batch at a time.

    A batch's writes are *staged* as soon as it is processed and reach the store when it is
    committed; reads see the staged values first, so the next batch, processed while this one
    commits, reads its own writes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unconfirmed: dict[TP, list[Unconfirmed]] = {}
        self._staged: dict[int, Entries] = {}

    # -- reads and writes by the engine --

    def read(self, partition: int, key: bytes) -> bytes | None:
        """An entry of a partition: staged by a batch not yet committed, else from the store."""
        staged = self._staged.get(partition)
        if staged is not None and key in staged:
            return staged[key]
        store = self.data
        if hasattr(store, "_db_for_partition"):
            value = store._db_for_partition(partition).get(key)
        else:
            value = store.data.get(key)
        return value if isinstance(value, bytes) else None

    def stage(self, writes: dict[int, Entries]) -> None:
        """Make a processed batch's writes visible to reads until ``write`` stores them."""
        for partition, entries in writes.items():
            self._staged.setdefault(partition, {}).update(entries)

    def write(self, partition: int, entries: Entries, changelog_offset: int) -> None:
        """Store entries already written to the changelog (up to ``changelog_offset``), atomically
        with that offset, so a restart reads the changelog from exactly there."""
        store: Any = self.data
        if not hasattr(store, "_db_for_partition"):  # memory store: nothing survives a restart anyway
            for key, value in entries.items():
                if value is None:
                    store.data.pop(key, None)
                else:
                    store.data[key] = value
        else:
            import rocksdict  # only with the RocksDB store, which needs it

            batch = rocksdict.WriteBatch(raw_mode=True)
            for key, value in entries.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            batch.put(store.offset_key, str(changelog_offset).encode())
            store._db_for_partition(partition).write(batch)
        staged = self._staged.get(partition, {})
        for key, value in entries.items():
            if key in staged and staged[key] is value:  # not staged again by a later batch
                del staged[key]

    def entries(self, partitions: Iterable[int]) -> Iterator[tuple[bytes, bytes]]:
        """Every entry of the local stores of these partitions, staged writes included (the
        memory store does not keep partitions apart: it yields every entry)."""
        store: Any = self.data
        partitions = list(partitions)
        staged: Entries = {}
        for partition in partitions:
            staged.update(self._staged.get(partition, {}))
        if not hasattr(store, "_db_for_partition"):
            stored: Iterable[tuple[bytes, bytes]] = list(store.data.items())
        else:
            stored = (item for p in partitions for item in store._visible_items(store._db_for_partition(p)))
        for key, value in stored:
            if key not in staged:
                yield key, value
        yield from ((key, value) for key, value in staged.items() if value is not None)

    def prefixed(self, partition: int, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """The entries of a partition whose keys start with ``prefix``, in key order, staged writes
        included."""
        store: Any = self.data
        if hasattr(store, "_db_for_partition"):
            found = {}
            for key, value in store._db_for_partition(partition).items(from_key=prefix):
                if not key.startswith(prefix):
                    break
                found[key] = value
        else:
            found = {key: value for key, value in store.data.items() if key.startswith(prefix)}
        for key, value in self._staged.get(partition, {}).items():
            if key.startswith(prefix):
                if value is None:
                    found.pop(key, None)
                else:
                    found[key] = value
        return sorted(found.items())

    def customers(self, partitions: Iterable[int]) -> Iterator[tuple[bytes, bytes]]:
        """Every (customer id, encoded state) of these partitions (see ``entries``)."""
        return ((key, value) for key, value in self.entries(partitions) if is_customer_key(key))

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
