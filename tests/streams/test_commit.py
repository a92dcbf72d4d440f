"""The batch commit: the order of its writes is what makes a crash at any point safe."""

from __future__ import annotations

from collections.abc import Iterable

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from connectors.publisher import OutRecord
from rules.catalog import load_default_catalog
from state.codec import audience_key, history_key
from state.times import DAY, format_timestamp
from streams.commit import BatchCommit, CommitFailed
from streams.processor import Batch, BatchProcessor, Record

NOW = 1_795_000_000_000_000
CHANGELOG = "app-customers-changelog"


class FakePublisher:
    """Records what was sent, in order; the sends numbered in ``failing`` (from 0) raise."""

    def __init__(self, failing: Iterable[int] = (), error: Exception | None = None) -> None:
        self.log: list[tuple[str, list[OutRecord]]] = []
        self.failing, self.error = set(failing), error
        self.calls = 0

    async def send(self, records: Iterable[OutRecord]) -> dict[tuple[str, int], int]:
        records = list(records)
        self.calls += 1
        if self.calls - 1 in self.failing:
            self.log.append(("failed", records))
            assert self.error is not None
            raise self.error
        self.log.append(("sent", records))
        return {(r.topic, r.partition or 0): 100 + n for n, r in enumerate(records)}

    async def send_soon(self, records: Iterable[OutRecord]) -> None:
        self.log.append(("soon", list(records)))


class FakeTable:
    changelog_topic_name = CHANGELOG

    def __init__(self, unconfirmed: list[OutRecord] | None = None) -> None:
        self.writes: list[tuple[int, dict[bytes, bytes], int]] = []
        self.unconfirmed = unconfirmed or []

    def write(self, partition: int, states: dict[bytes, bytes], changelog_offset: int) -> None:
        self.writes.append((partition, states, changelog_offset))

    def confirm(self, partitions: Iterable[int]) -> list[OutRecord]:
        return [OutRecord(CHANGELOG, b"marker", None, p) for p in partitions]

    def take_unconfirmed(self, partitions: set[int]) -> list[OutRecord]:
        taken, self.unconfirmed = self.unconfirmed, []
        return taken


def first_order_batch() -> Batch:
    value = {"event_id": "o1", "customer_id": "c1", "occurred_at": format_timestamp(NOW), "order_id": "1",
             "amount": "120.00", "status": "paid"}
    processor = BatchProcessor(load_default_catalog(), 1, lambda partition, key: None)
    return processor.process([Record("orders", 0, 7, b"c1", orjson.dumps(value))], NOW)


def committer(publisher: FakePublisher, table: FakeTable, retry_for: float = 1.0) -> BatchCommit:
    return BatchCommit(publisher, table, lambda name: f"x-{name}", retry_for=retry_for)  # type: ignore[arg-type]


async def test_state_with_its_outbox_is_written_before_the_outputs_and_confirmed_after() -> None:
    publisher, table = FakePublisher(), FakeTable()
    batch = first_order_batch()
    await committer(publisher, table).commit(batch, NOW)
    (first, states), (second, outputs), (third, markers) = publisher.log
    assert (first, second, third) == ("sent", "sent", "soon")
    # The customer, a history step per change and its partition's audience figures of the day.
    steps = [history_key("c1", change.seq) for change in batch.changes]
    assert [(r.topic, r.key, r.partition) for r in states] == [
        (CHANGELOG, b"c1", 0), *((CHANGELOG, key, 0) for key in steps), (CHANGELOG, audience_key(0, NOW // DAY), 0),
    ]
    assert not any(r.headers for r in states[1:])  # the outbox travels with the customer
    outbox = states[0].headers
    assert [topic for topic, _ in outbox] == ["x-tag-changes"] * len(batch.changes) + ["x-tasks"] * len(batch.tasks)
    assert [(r.topic, r.value) for r in outputs] == list(outbox)  # the same bytes, stored and sent
    assert markers == [OutRecord(CHANGELOG, b"marker", None, 0)]
    assert table.writes == [(0, batch.states[0], 100 + len(states) - 1)]  # the offset of the last record


async def test_outputs_that_cannot_be_written_fail_the_batch_before_anything_is_confirmed() -> None:
    publisher, table = FakePublisher(failing={1}, error=MessageSizeTooLargeError()), FakeTable()  # 1: the outputs
    with pytest.raises(CommitFailed):
        await committer(publisher, table).commit(first_order_batch(), NOW)
    assert table.writes == [] and all(kind != "soon" for kind, _ in publisher.log)


async def test_a_passing_failure_is_retried_with_the_same_records() -> None:
    publisher, table = FakePublisher(failing={0, 1}, error=KafkaConnectionError()), FakeTable()
    await committer(publisher, table, retry_for=10).commit(first_order_batch(), NOW)
    kinds = [kind for kind, _ in publisher.log]
    assert kinds[:3] == ["failed", "failed", "sent"]
    assert publisher.log[0][1] == publisher.log[2][1]
    assert len(table.writes) == 1


async def test_a_failure_that_does_not_pass_stops_the_batch_after_the_retry_time() -> None:
    publisher, table = FakePublisher(failing=range(1000), error=KafkaConnectionError()), FakeTable()
    with pytest.raises(CommitFailed, match="kept failing"):
        await committer(publisher, table, retry_for=0.3).commit(first_order_batch(), NOW)
    assert table.writes == []


async def test_outputs_a_previous_owner_may_not_have_delivered_are_sent_again_then_confirmed() -> None:
    lost = [OutRecord("x-tag-changes", b"c1", b'{"change_id":"c1:1"}')]
    publisher, table = FakePublisher(), FakeTable(unconfirmed=list(lost))
    assert await committer(publisher, table).resend_unconfirmed({0, 1}) == 1
    assert publisher.log[0] == ("sent", lost) and publisher.log[1][0] == "soon"
    assert await committer(publisher, table).resend_unconfirmed({0, 1}) == 0
