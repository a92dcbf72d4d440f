"""The customer table: batch writes with their changelog offset, and recovery of the outputs of
batches that were written to the changelog but never confirmed delivered."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from connectors.publisher import OutRecord
from streams.customer_table import MARKER_KEY, CustomerTable
from tests.streams.harness import customer_table_in

CHANGES = "x-tag-changes"


def record(table: CustomerTable, partition: int, offset: int, key: bytes, value: bytes | None,
           outbox: list[tuple[str, bytes]] | None = None) -> Any:
    tp = TP(table.changelog_topic_name, partition)
    message = SimpleNamespace(tp=tp, partition=partition, offset=offset, key=key, value=value, headers=outbox or [])
    return SimpleNamespace(message=message, key=key, value=value)


def test_a_batch_write_stores_the_states_and_the_changelog_offset_together(tmp_path: Path) -> None:
    table = customer_table_in(tmp_path)
    table.write(1, {b"c1": b"state-1", b"c2": b"state-2"}, changelog_offset=41)
    assert table.read(1, b"c1") == b"state-1" and table.read(0, b"c1") is None
    assert table.data.persisted_offset(TP(table.changelog_topic_name, 1)) == 41
    assert dict(table.customers([1])) == {b"c1": b"state-1", b"c2": b"state-2"}
    assert dict(table.customers([0])) == {}


def test_a_processed_batch_is_read_back_before_its_commit_stores_it(tmp_path: Path) -> None:
    table = customer_table_in(tmp_path)
    table.write(1, {b"c1": b"old"}, changelog_offset=1)
    first, second = {b"c1": b"first"}, {b"c1": b"second"}
    table.stage({1: first})
    table.stage({1: second})  # the next batch, processed while the first commits
    assert table.read(1, b"c1") == b"second"
    table.write(1, first, changelog_offset=2)  # the first commit must not hide the second batch
    assert table.read(1, b"c1") == b"second"
    table.write(1, second, changelog_offset=3)
    assert table.read(1, b"c1") == b"second" and table._staged[1] == {}


def test_a_none_value_deletes_the_entry_staged_and_stored(tmp_path: Path) -> None:
    table = customer_table_in(tmp_path)
    table.write(0, {b"\x01a:0:1": b"{}", b"c1": b"s1"}, changelog_offset=1)
    gone: dict[bytes, bytes | None] = {b"\x01a:0:1": None}
    table.stage({0: gone})
    assert table.read(0, b"\x01a:0:1") is None and dict(table.entries([0])) == {b"c1": b"s1"}
    table.write(0, gone, changelog_offset=2)
    assert table.read(0, b"\x01a:0:1") is None and dict(table.entries([0])) == {b"c1": b"s1"}


def test_customers_leaves_out_histories_and_audience_figures(tmp_path: Path) -> None:
    table = customer_table_in(tmp_path)
    table.write(0, {b"c1": b"s1", b"\x01h:c1": b"[]", b"\x01a:0:20000": b"{}"}, changelog_offset=1)
    table.stage({0: {b"c2": b"s2"}})
    assert dict(table.customers([0])) == {b"c1": b"s1", b"c2": b"s2"}
    assert len(dict(table.entries([0]))) == 4


def test_outboxes_after_the_last_marker_are_sent_again_and_those_before_are_not(tmp_path: Path) -> None:
    table = customer_table_in(tmp_path)
    table.apply_changelog_batch([
        record(table, 0, 10, b"c1", b"s1", [(CHANGES, b"change c1:1")]),
        record(table, 0, 11, MARKER_KEY, None),
        record(table, 0, 12, b"c2", b"s2", [(CHANGES, b"change c2:1")]),
        record(table, 0, 13, b"c2", b"s2'", [(CHANGES, b"change c2:2")]),
        record(table, 1, 5, b"c3", b"s3", [(CHANGES, b"change c3:1")]),
    ])
    assert table.read(0, b"c2") == b"s2'"
    assert table.take_unconfirmed({0}) == [
        OutRecord(CHANGES, b"c2", b"change c2:1"), OutRecord(CHANGES, b"c2", b"change c2:2"),
    ]
    assert table.take_unconfirmed({0}) == []  # taken once
    assert [r.key for r in table.take_unconfirmed({1})] == [b"c3"]


def test_the_store_never_claims_more_than_the_last_confirmed_point(tmp_path: Path) -> None:
    table = customer_table_in(tmp_path)
    table.apply_changelog_batch([
        record(table, 0, 10, b"c1", b"s1", [(CHANGES, b"m")]),
        record(table, 0, 11, MARKER_KEY, None),
        record(table, 0, 12, b"c2", b"s2", [(CHANGES, b"m")]),
        record(table, 0, 13, b"c3", b"s3"),
    ])
    # a restart reads the changelog again from the first unconfirmed record
    assert table.data.persisted_offset(TP(table.changelog_topic_name, 0)) == 11
