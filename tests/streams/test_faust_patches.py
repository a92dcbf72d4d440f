"""streams.faust_patches without a broker: a real Faust consumer (of an App that is never started)
over aiokafka's real ``Fetcher.fetched_records`` and subscription state, with the broker replaced by
records placed in the fetch buffer, and the consumer thread by direct calls.

The first test runs faust-streaming 0.15.3 unpatched and shows the bug: records fetched while
recovery pauses the last active partitions are drained out of aiokafka and dropped.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterator
from typing import Any

import faust
import pytest
from aiokafka.consumer.fetcher import Fetcher, FetchResult
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.structs import ConsumerRecord, TopicPartition
from faust.types import TP

from streams import faust_patches

INPUT = TopicPartition("t-logins", 0)  # aiokafka's partitions; Faust's sets hold its own TP tuples
CHANGELOG = TopicPartition("t-customers-changelog", 0)
F_INPUT, F_CHANGELOG = TP(*INPUT), TP(*CHANGELOG)


class Batch:
    """What aiokafka's PartitionRecords is to a FetchResult: records, and the next fetch offset."""

    def __init__(self, tp: TopicPartition, offsets: range) -> None:
        self.tp = tp
        self._offsets = iter(offsets)
        self.next_fetch_offset = offsets[0]

    def __iter__(self) -> Iterator[ConsumerRecord[bytes, bytes]]:
        return self

    def __next__(self) -> ConsumerRecord[bytes, bytes]:
        offset = next(self._offsets)
        self.next_fetch_offset = offset + 1
        return ConsumerRecord(self.tp.topic, self.tp.partition, offset, 0, 0, b"k", b"v", None, 1, 1, ())


class FakeFetcher:
    """aiokafka's Fetcher with its own ``fetched_records`` and ``seek_to``, and no network.

    ``during_wait`` runs when ``fetched_records`` starts waiting for data (the moment the main
    thread moves on while the consumer thread waits); then the wait ends, and later ones time out.
    """

    fetched_records = Fetcher.fetched_records
    seek_to = Fetcher.seek_to
    _notify = Fetcher._notify

    def __init__(self, subscriptions: SubscriptionState) -> None:
        self._subscriptions = subscriptions
        self._records: collections.OrderedDict[TopicPartition, Any] = collections.OrderedDict()
        self._closed = False
        self._wait_consume_future = None
        self.during_wait: list[Any] = []

    def _create_fetch_waiter(self) -> asyncio.Future[None]:
        waiter = asyncio.get_running_loop().create_future()
        if self.during_wait:
            self.during_wait.pop(0)()
            waiter.set_result(None)
        return waiter

    def buffer(self, tp: TopicPartition, offsets: range) -> None:
        """Records for ``tp`` arrive from the broker, fetched from the partition's position."""
        assignment = self._subscriptions.subscription.assignment
        assert assignment.state_value(tp).position == offsets[0], "aiokafka fetches from the position"
        self._records[tp] = FetchResult(tp, assignment=assignment, partition_records=Batch(tp, offsets), backoff=0)


class FakeKafkaConsumer:
    """The AIOKafkaConsumer the Faust consumer thread holds: subscription, fetcher, seek."""

    def __init__(self) -> None:
        self._subscription = SubscriptionState()
        self._subscription.subscribe({INPUT.topic, CHANGELOG.topic})
        self._subscription.assign_from_subscribed({INPUT, CHANGELOG})
        for tp in (INPUT, CHANGELOG):
            self._subscription.seek(tp, 0)
        self._fetcher = FakeFetcher(self._subscription)
        self._closed = False
        self._max_poll_records = None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._fetcher.seek_to(tp, offset)  # all that AIOKafkaConsumer.seek does after its checks

    def highwater(self, tp: TopicPartition) -> int:
        return 100

    def position(self, tp: TopicPartition) -> int:
        return int(self._subscription.subscription.assignment.state_value(tp).position)


@pytest.fixture
def patched() -> None:
    faust_patches.apply()


@pytest.fixture
async def consumer() -> AsyncIterator[Any]:
    """A Faust consumer of an App that is never started, its thread replaced by direct calls."""
    app = faust.App("t-patches", broker="kafka://127.0.0.1:1", store="memory://")
    faust_consumer: Any = app.consumer
    kafka = FakeKafkaConsumer()
    thread = faust_consumer._thread
    thread._consumer = kafka

    async def call_thread(fun: Any, *args: Any, **kwargs: Any) -> Any:
        return await fun(*args, **kwargs)

    thread.call_thread = call_thread
    faust_consumer.kafka = kafka
    yield faust_consumer
    thread.thread_loop.close()  # the thread's own loop, created with it and never run


async def drain(consumer: Any, on_record: Any = None) -> list[tuple[TopicPartition, int]]:
    """One ``getmany`` as Faust's fetcher loop runs it; ``on_record`` runs after each record."""
    got = []
    async for tp, message in consumer.getmany(timeout=0.05):
        got.append((tp, message.offset))
        if on_record is not None:
            on_record(tp, message.offset)
    return got


def recovery_finishes_reading_the_changelog(consumer: Any) -> None:
    """What faust/tables/recovery.py does while the fetch waits: the changelog is paused (the
    active set becomes empty), and meanwhile records of the paused input partition arrive."""
    consumer.pause_partitions({F_CHANGELOG})
    consumer.kafka._fetcher.buffer(INPUT, range(0, 3))


def while_recovering(consumer: Any) -> None:
    consumer._active_partitions = {F_CHANGELOG}
    consumer._paused_partitions = {F_INPUT}
    consumer.kafka._fetcher.during_wait.append(lambda: recovery_finishes_reading_the_changelog(consumer))


async def test_unpatched_faust_drains_and_drops_the_records_of_a_paused_partition(
    consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for (owner, name), original in faust_patches.ORIGINALS.items():
        monkeypatch.setattr(owner, name, original)
    while_recovering(consumer)
    assert await drain(consumer) == []
    # aiokafka took the empty active set for "every partition": the records are gone from its buffer
    # and its position is past them; nothing will fetch offsets 0-2 again.
    assert consumer.kafka.position(INPUT) == 3
    assert INPUT not in consumer.kafka._fetcher._records


async def test_records_of_a_partition_paused_during_the_fetch_stay_in_aiokafka(patched: None, consumer: Any) -> None:
    while_recovering(consumer)
    assert await drain(consumer) == []
    assert consumer.kafka.position(INPUT) == 0
    assert INPUT in consumer.kafka._fetcher._records
    consumer.resume_partitions({F_INPUT})  # recovery completed
    assert await drain(consumer) == [(INPUT, 0), (INPUT, 1), (INPUT, 2)]
    assert consumer.kafka.position(INPUT) == 3


async def test_a_partition_resumed_during_the_fetch_is_fetched_by_the_same_call(patched: None, consumer: Any) -> None:
    """aiokafka still follows the live set (no extra wait after recovery resumes a partition)."""
    consumer._active_partitions = {F_CHANGELOG}
    consumer._paused_partitions = {F_INPUT}

    def recovery_completes() -> None:
        consumer.pause_partitions({F_CHANGELOG})
        consumer.resume_partitions({F_INPUT})
        consumer.kafka._fetcher.buffer(INPUT, range(0, 2))

    consumer.kafka._fetcher.during_wait.append(recovery_completes)
    assert await drain(consumer) == [(INPUT, 0), (INPUT, 1)]


async def test_records_not_passed_on_are_fetched_again_from_the_first_of_them(patched: None, consumer: Any) -> None:
    consumer._active_partitions = {F_INPUT}
    consumer.kafka.seek(INPUT, 5)
    consumer.kafka._fetcher.buffer(INPUT, range(5, 9))

    def pause_after_the_first(tp: TopicPartition, offset: int) -> None:
        consumer.pause_partitions({F_INPUT})

    assert await drain(consumer, pause_after_the_first) == [(INPUT, 5)]
    assert consumer.kafka.position(INPUT) == 6  # 6-8 will be fetched again
    consumer.resume_partitions({F_INPUT})
    consumer.kafka._fetcher.buffer(INPUT, range(6, 9))
    assert await drain(consumer) == [(INPUT, 6), (INPUT, 7), (INPUT, 8)]


async def test_a_generation_change_rewinds_what_was_not_passed_on(patched: None, consumer: Any) -> None:
    consumer._active_partitions = {F_INPUT, F_CHANGELOG}
    consumer.kafka._fetcher.buffer(INPUT, range(0, 4))

    def rebalance(tp: TopicPartition, offset: int) -> None:
        consumer.app.consumer_generation_id += 1

    assert await drain(consumer, rebalance) == [(INPUT, 0)]
    assert consumer.kafka.position(INPUT) == 1


async def test_a_position_moved_since_the_fetch_is_left_alone(patched: None, consumer: Any) -> None:
    consumer._active_partitions = {F_INPUT}
    consumer.kafka._fetcher.buffer(INPUT, range(0, 4))

    def seek_to_committed(tp: TopicPartition, offset: int) -> None:
        consumer.pause_partitions({F_INPUT})
        consumer.kafka.seek(INPUT, 10)  # e.g. Consumer.perform_seek: that position wins

    assert await drain(consumer, seek_to_committed) == [(INPUT, 0)]
    assert consumer.kafka.position(INPUT) == 10


async def test_a_new_assignment_is_left_alone(patched: None, consumer: Any) -> None:
    consumer._active_partitions = {F_INPUT}
    consumer.kafka._fetcher.buffer(INPUT, range(0, 4))
    subscription = consumer.kafka._subscription

    def reassign(tp: TopicPartition, offset: int) -> None:
        consumer.pause_partitions({F_INPUT})
        subscription.assign_from_subscribed({INPUT})
        subscription.seek(INPUT, 0)

    assert await drain(consumer, reassign) == [(INPUT, 0)]
    assert consumer.kafka.position(INPUT) == 0  # the new assignment's own position, not a rewind


def test_not_passed_on_is_the_suffix_after_the_last_record_passed_on() -> None:
    def records(offsets: range) -> list[ConsumerRecord[bytes, bytes]]:
        return [ConsumerRecord(INPUT.topic, 0, o, 0, 0, b"", b"", None, 0, 0, ()) for o in offsets]

    fetched = {INPUT: records(range(3, 7)), CHANGELOG: records(range(0, 2))}
    assert faust_patches.not_passed_on(fetched, {}) == {INPUT: 3, CHANGELOG: 0}
    assert faust_patches.not_passed_on(fetched, {INPUT: 5, CHANGELOG: 2}) == {INPUT: 5}
    assert faust_patches.not_passed_on(fetched, {INPUT: 7, CHANGELOG: 2}) == {}


def test_apply_is_idempotent_and_pinned_to_the_faust_version(monkeypatch: pytest.MonkeyPatch) -> None:
    faust_patches.apply()
    faust_patches.apply()
    from faust.transport.consumer import Consumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert faust_patches.applied()
    assert Consumer.getmany is faust_patches.getmany
    assert Consumer._wait_next_records is faust_patches._wait_next_records
    assert AIOKafkaConsumerThread._fetch_records is faust_patches._fetch_records
    monkeypatch.setattr(faust, "__version__", "0.15.4")
    with pytest.raises(RuntimeError, match=r"0\.15\.3"):
        faust_patches.apply()


async def test_the_worker_consumer_lets_the_broker_gather_records_briefly_before_answering(patched: None) -> None:
    app = faust.App("t-fetch-wait", broker="kafka://127.0.0.1:1", store="memory://")
    thread: Any = app.consumer._thread
    try:
        kafka = thread._create_worker_consumer(app.transport)
        assert kafka._fetch_max_wait_ms == faust_patches.FETCH_MAX_WAIT_MS  # Faust fixes 1,500
        assert faust_patches.FETCH_MAX_WAIT_MS <= 100
        assert kafka._fetch_min_bytes == faust_patches.FETCH_MIN_BYTES > 1  # not one fetch per record
        await kafka.stop()  # never started: closes its client
    finally:
        thread.thread_loop.close()
