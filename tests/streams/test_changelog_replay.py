"""Changelog replay a fetch at a time: what Faust's recovery loop does record by record - offsets,
buffered store writes, the end of recovery, standbys ready - done for a whole fetch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord
from faust.types import TP

from connectors.publisher import OutRecord
from streams.changelog_replay import replay
from streams.customer_table import MARKER_KEY, CustomerTable
from tests.streams.harness import customer_table_in

CHANGES = "x-tag-changes"


def changelog(table: CustomerTable, partition: int) -> TP:
    return TP(table.changelog_topic_name, partition)


def records(tp: TP, first: int, *entries: tuple[bytes, bytes | None]) -> list[Any]:
    """aiokafka records of ``entries`` at offsets ``first``, ``first + 1``, ..."""
    return [
        ConsumerRecord(tp.topic, tp.partition, first + i, 0, 0, key, value, None, 0, 0, [])
        for i, (key, value) in enumerate(entries)
    ]


def stored(table: CustomerTable, partition: int, key: bytes) -> bytes | None:
    value: bytes | None = table.data._db_for_partition(partition).get(key)
    return value


def test_a_standby_fetch_waits_in_the_buffer_until_it_fills_then_reaches_the_store(tmp_path: Path) -> None:
    table = customer_table_in(tmp_path, buffer_size=3)
    recovery, tp = table.app.tables.recovery, changelog(table, 1)
    recovery.add_standby(table, tp)
    assert replay(recovery, tp, records(tp, 0, (b"c1", b"s1"), (b"c2", b"s2")))
    assert recovery.standby_offsets[tp] == 1 and stored(table, 1, b"c1") is None
    assert replay(recovery, tp, records(tp, 2, (b"c1", b"s1'"), (b"c3", None)))
    assert [stored(table, 1, key) for key in (b"c1", b"c2", b"c3")] == [b"s1'", b"s2", None]
    assert table.data.persisted_offset(tp) == 3 and recovery.buffers[table] == []


def test_records_the_store_already_holds_are_not_applied_again(tmp_path: Path) -> None:
    table = customer_table_in(tmp_path, buffer_size=1)
    tp = changelog(table, 0)
    table.write(0, {b"c1": b"newest"}, changelog_offset=5)
    recovery = table.app.tables.recovery
    recovery.add_standby(table, tp)  # starts from the stored offset
    replay(recovery, tp, records(tp, 4, (b"c1", b"older"), (b"c1", b"stale"), (b"c2", b"s2")))
    assert stored(table, 0, b"c1") == b"newest" and stored(table, 0, b"c2") == b"s2"
    assert recovery.standby_offsets[tp] == 6


def test_active_recovery_ends_with_everything_stored_once_each_partition_reaches_its_highwater(
    tmp_path: Path,
) -> None:
    table = customer_table_in(tmp_path)
    recovery = table.app.tables.recovery
    first, second = changelog(table, 0), changelog(table, 1)
    for tp in (first, second):
        recovery.add_active(table, tp)
        recovery.active_offsets[tp], recovery.active_highwaters[tp] = -1, 1  # as Faust for an empty store
    recovery._set_recovery_started()
    replay(recovery, first, records(first, 0, (b"c1", b"s1"), (b"c1", b"s1'")))
    assert recovery.in_recovery and not recovery.signal_recovery_end.is_set()
    replay(recovery, second, records(second, 0, (b"c2", b"s2")))
    assert recovery.in_recovery  # one record of partition 1 still to come
    replay(recovery, second, records(second, 1, (b"c3", b"s3")))
    assert not recovery.in_recovery and recovery.signal_recovery_end.is_set()
    assert [stored(table, 0, b"c1"), stored(table, 1, b"c2"), stored(table, 1, b"c3")] == [b"s1'", b"s2", b"s3"]


def test_standbys_are_ready_once_each_reaches_its_highwater(tmp_path: Path) -> None:
    table = customer_table_in(tmp_path)
    recovery, tp = table.app.tables.recovery, changelog(table, 1)
    recovery.add_standby(table, tp)
    recovery.standby_highwaters[tp] = 2
    replay(recovery, tp, records(tp, 0, (b"c1", b"s1"), (b"c2", b"s2")))
    assert not table.app.tables.standbys_ready
    replay(recovery, tp, records(tp, 2, (b"c3", b"s3")))
    assert table.app.tables.standbys_ready


def test_a_standby_keeps_the_outboxes_of_unconfirmed_records_for_a_takeover(tmp_path: Path) -> None:
    table = customer_table_in(tmp_path, buffer_size=1)
    recovery, tp = table.app.tables.recovery, changelog(table, 0)
    recovery.add_standby(table, tp)
    fetched = records(tp, 0, (b"c1", b"s1"), (MARKER_KEY, None), (b"c2", b"s2"))
    fetched[0].headers.append((CHANGES, b"change c1"))
    fetched[2].headers.append((CHANGES, b"change c2"))
    replay(recovery, tp, fetched)
    assert table.take_unconfirmed({0}) == [OutRecord(CHANGES, b"c2", b"change c2")]


def test_a_partition_recovery_does_not_follow_is_left_to_faust(tmp_path: Path) -> None:
    table = customer_table_in(tmp_path)
    recovery, tp = table.app.tables.recovery, changelog(table, 0)
    assert not replay(recovery, tp, records(tp, 0, (b"c1", b"s1")))
    assert recovery.buffers[table] == [] and tp not in recovery.standby_offsets
