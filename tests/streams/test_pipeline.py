"""The batch pipeline: batches are committed in order, the next is computed meanwhile, and input
offsets are committed only after their batch, for the partitions still assigned, at most every
``OFFSETS_EVERY`` seconds, and all of them by ``finish``."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka.structs import TopicPartition

from connectors.partitioning import partition_for
from rules.catalog import load_default_catalog
from state.times import format_timestamp, wall_clock
from streams import pipeline as pipeline_module
from streams.pipeline import BatchPipeline, Timing
from streams.processor import Batch, BatchProcessor, Record
from tests.eventually import eventually

PARTITIONS = 8
INPUT = TopicPartition("logins", 0)
GONE = TopicPartition("logins", 1)  # revoked while its batch was committing


class SlowCommit:
    """Commits that finish only when the test says so; what happened, in order, in ``log``."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.release: list[asyncio.Event] = []

    async def resend_unconfirmed(self, partitions: set[int]) -> int:
        return 0

    async def commit(self, batch: Batch, now: int) -> None:
        number = len(self.release)
        self.release.append(asyncio.Event())
        self.log.append(f"commit {number} started")
        await self.release[number].wait()
        self.log.append(f"commit {number} done")


class Table:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.staged: dict[int, dict[bytes, bytes | None]] = {}
        self.read_once = asyncio.Event()

    def read(self, partition: int, key: bytes) -> bytes | None:
        self.read_once.set()
        return self.staged.get(partition, {}).get(key)

    def stage(self, writes: dict[int, dict[bytes, bytes | None]]) -> None:
        self.log.append(f"processed: {sum(map(len, writes.values()))} writes")
        for partition, entries in writes.items():
            self.staged.setdefault(partition, {}).update(entries)


class Consumer:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self._committed_offset: dict[Any, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return {INPUT}

    async def _commit(self, offsets: dict[Any, int]) -> bool:
        self.log.append(f"offsets {sorted((tp.partition, offset) for tp, offset in offsets.items())}")
        return True


def login(customer: str) -> Record:
    value = {"event_id": f"e-{customer}", "customer_id": customer, "occurred_at": format_timestamp(wall_clock())}
    return Record("logins", partition_for(customer.encode(), PARTITIONS), 0, customer.encode(), orjson.dumps(value))


def pipeline(log: list[str]) -> tuple[BatchPipeline, SlowCommit, Table]:
    table, commit, consumer = Table(log), SlowCommit(log), Consumer(log)
    processor = BatchProcessor(load_default_catalog(), PARTITIONS, table.read)

    def committed(batch: Batch, now: int, timing: Timing) -> None:
        log.append(f"after commit: {len(batch.changes)} changes")

    return BatchPipeline(processor, table, commit, lambda: consumer, lambda: {0}, committed), commit, table


async def test_a_batch_is_computed_while_the_previous_one_commits_and_commits_stay_in_order(monkeypatch: Any) -> None:
    monkeypatch.setattr(pipeline_module, "OFFSETS_EVERY", 60.0)  # the first batch's offsets only, until finish
    log: list[str] = []
    batches, commit, table = pipeline(log)
    await batches.handle([login("c1")], {INPUT: 1}, 0.0)  # returns at once: nothing waits before it
    assert table.staged, "the next batch reads what this one wrote before it is stored"
    second = asyncio.ensure_future(batches.handle([login("c2")], {INPUT: 2, GONE: 5}, 0.0))
    await eventually(lambda: sum(line.startswith("processed") for line in log) == 2, what="the second batch processed")
    assert not second.done(), "back pressure: one commit waits behind the one in flight"
    assert [line for line in log if line.startswith("commit")] == ["commit 0 started"], (
        "the second commit starts only after the first is done"
    )
    commit.release[0].set()
    await second

    def committed_so_far() -> list[str]:
        return [line for line in log if not line.startswith("processed")]

    await eventually(lambda: len(committed_so_far()) >= 4, what="the first batch's commit, offsets and callback")
    committed = committed_so_far()
    assert committed[:4] == ["commit 0 started", "commit 0 done", "offsets [(0, 1)]", "after commit: 2 changes"]
    commit.release[1].set()
    await batches.finish()
    committed = committed_so_far()
    assert committed[4:] == ["commit 1 started", "commit 1 done", "after commit: 2 changes", "offsets [(0, 2)]"], (
        "offsets only of partitions still assigned, after their batch; those left for later by finish"
    )


async def test_while_batches_keep_coming_offsets_wait_for_the_next_offset_commit(monkeypatch: Any) -> None:
    monkeypatch.setattr(pipeline_module, "OFFSETS_EVERY", 60.0)  # not due again before finish()
    log: list[str] = []
    batches, commit, _ = pipeline(log)

    async def started(commits: int) -> None:
        await eventually(lambda: len(commit.release) >= commits, what=f"{commits} commits started")

    await batches.handle([login("c1")], {INPUT: 1}, 0.0)
    second = asyncio.ensure_future(batches.handle([login("c2")], {INPUT: 2}, 0.0))
    await started(1)
    commit.release[0].set()
    await second  # batch 1 now commits, and batch 2 will wait behind it
    third = asyncio.ensure_future(batches.handle([login("c3")], {INPUT: 3}, 0.0))
    await started(2)
    commit.release[1].set()
    await third  # batch 1's commit is done: batch 3 waited for it
    offsets = [line for line in log if line.startswith("offsets")]
    assert offsets == ["offsets [(0, 1)]"], "batch 1's offsets wait: batch 2 is behind it, and 1 s has not passed"
    await started(3)
    commit.release[2].set()
    await batches.finish()
    offsets = [line for line in log if line.startswith("offsets")]
    assert offsets == ["offsets [(0, 1)]", "offsets [(0, 3)]"], "finish commits the offsets of every batch so far"


async def test_the_offsets_of_a_quiet_stream_are_committed_once_due(monkeypatch: Any) -> None:
    monkeypatch.setattr(pipeline_module, "OFFSETS_EVERY", 0.5)
    log: list[str] = []
    batches, commit, _ = pipeline(log)
    await batches.handle([login("c1")], {INPUT: 1}, 0.0)
    commit.release[0].set()
    await eventually(lambda: "offsets [(0, 1)]" in log, what="the first batch's offsets, due at once")
    await batches.handle([login("c2")], {INPUT: 2}, 0.0)  # no batch comes after this one
    await eventually(lambda: len(commit.release) >= 2, what="the second commit started")
    commit.release[1].set()
    await eventually(lambda: "commit 1 done" in log, what="the second commit done")
    assert "offsets [(0, 2)]" not in log, "its offsets are not due yet, half a second after the first ones"
    await eventually(lambda: "offsets [(0, 2)]" in log, what="the second batch's offsets, once due")


async def test_an_offset_commit_that_never_returns_is_given_up(monkeypatch: Any, caplog: Any) -> None:
    monkeypatch.setattr(pipeline_module, "OFFSETS_TIMEOUT", 0.05)
    log: list[str] = []
    batches, commit, _ = pipeline(log)

    async def unanswered(offsets: dict[Any, int]) -> bool:
        await asyncio.Event().wait()  # as aiokafka's commit while no group coordinator answers
        return True

    batches.consumer()._commit = unanswered
    await batches.handle([login("c1")], {INPUT: 1}, 0.0)
    commit.release[0].set()
    await batches.finish()  # returns: the worker can stop
    assert "input offsets not committed" in caplog.text
    assert "after commit: 2 changes" in log, "the batch itself was committed"


async def test_a_commit_goes_on_while_the_next_batch_is_processed(monkeypatch: Any) -> None:
    monkeypatch.setattr(pipeline_module, "SLICE", 0.0)  # a turn of the event loop after every record
    log: list[str] = []
    batches, commit, _ = pipeline(log)
    await batches.handle([login("c1")], {INPUT: 1}, 0.0)
    await eventually(lambda: commit.release, what="the first commit started")
    commit.release[0].set()  # its acknowledgement is in: what is left needs the event loop to run
    await batches.handle([login(f"c{n}") for n in range(2, 12)], {INPUT: 11}, 0.0)
    second_processed = [n for n, line in enumerate(log) if line.startswith("processed")][1]
    assert log.index("commit 0 done") < second_processed, (
        "the first commit finished while the second batch was being processed, not after it"
    )
    commit.release[1].set()
    await batches.finish()


async def test_nothing_changes_what_processing_reads_in_the_middle_of_a_batch(monkeypatch: Any) -> None:
    monkeypatch.setattr(pipeline_module, "SLICE", 0.0)
    log: list[str] = []
    batches, commit, table = pipeline(log)

    async def reindex() -> None:
        async with batches.between_batches():
            log.append("re-indexed")

    processing = asyncio.ensure_future(batches.handle([login(f"c{n}") for n in range(10)], {INPUT: 10}, 0.0))
    await table.read_once.wait()  # the batch has read its first customer: it is being processed
    await reindex()
    await processing
    assert log.index("processed: 36 writes") < log.index("re-indexed"), "the re-indexing waited for the batch"
    commit.release[0].set()
    await batches.finish()
