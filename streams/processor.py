"""One batch of input records -> state writes and outputs. The agent's logic, without Faust.

The worker (``streams/pipeline.py``) starts a ``BatchRun``, adds the batch's raw records to it one
by one, finishes it, and then performs what it returns: table writes, tag changes, tasks, dead
letters and re-routed records (``BatchProcessor.process`` does all three steps at once). Keeping
this synchronous and free of Faust means: each customer's state is encoded once per batch however
many of its events the batch holds (and decoded only when it is not in the cache of recently used
states), and the logic is tested without a broker. One run at a time: the pipeline starts the next
only after ``finish``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from connectors.kafka_admin import TICKS
from connectors.partitioning import partition_for
from rules.catalog import Catalog
from rules.engine import Result, TagChange, Task, fire_deadlines, process_event, reevaluate
from rules.history import step_of
from state.audience import Audience
from state.cache import StateCache
from state.census import Census
from state.codec import (
    audience_day_of,
    audience_key,
    decode_audience_day,
    decode_state,
    encode_audience_day,
    encode_state,
    encode_step,
    history_key,
    is_customer_key,
    peek_catalog_version,
    peek_deadline,
    peek_source_channel,
    peek_tags,
)
from state.customer import CustomerState, Outcome
from state.deadlines import DeadlineIndex
from state.events import InvalidEvent, parse_event
from state.history import KEEP_STEPS
from streams.messages import DeadLetter

T = TypeVar("T")


class Record(NamedTuple):
    """An input record as read from Kafka: logical topic name, position, raw key and value.

    A named tuple, not a frozen dataclass: one is made per input record, and a tuple is made
    about four times faster."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class Batch:
    """What the agent must do after a batch: write states, publish outputs, count."""

    # partition -> table key -> value (None: delete): customer states, their histories and the
    # partition's audience figures, as ``state/codec.py`` encodes them
    states: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    changes: list[TagChange] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    reroutes: list[tuple[Record, str, int]] = field(default_factory=list)  # record, key, partition
    read: dict[str, int] = field(default_factory=dict)  # topic -> records read
    applied: dict[str, int] = field(default_factory=dict)  # topic -> events applied
    duplicates: int = 0
    fire_delays: list[int] = field(default_factory=list)  # microseconds late, per deadline fired
    ticked: set[int] = field(default_factory=set)  # partitions whose tick this batch handled
    reevaluated: int = 0  # customers re-evaluated under a new catalog
    changed: list[CustomerState] = field(default_factory=list)  # customers whose tags changed


class BatchProcessor:
    """Applies batches of records to customer states held in a key-value table.

    ``load`` reads a key from the table of a partition (None if absent), including what earlier
    batches wrote and have not committed yet; ``cache`` keeps decoded states between batches (see
    ``state.cache``). ``audiences`` holds each owned partition's audience figures (all of them in
    memory: they are small, and every batch with changes adds to them), ``censuses`` its customer
    counts.
    """

    def __init__(
        self,
        catalog: Catalog,
        partitions: int,
        load: Callable[[int, bytes], bytes | None],
        topic_prefix: str = "",
        timer_batch: int = 1000,
        cache: StateCache | None = None,
    ) -> None:
        self.topic_prefix = topic_prefix
        self.catalog = catalog
        self.partitions = partitions
        self.load = load
        self.timer_batch = timer_batch
        self.cache = cache if cache is not None else StateCache(0)
        self.deadlines: dict[int, DeadlineIndex] = {}  # partition -> its customers' deadlines
        # partition -> customers still to re-evaluate under a new catalog, consumed by ticks
        self.stale: dict[int, list[str]] = {}
        self.audiences: dict[int, Audience] = {}
        self.censuses: dict[int, Census] = {}

    def process(self, records: Iterable[Record], now: int) -> Batch:
        """One batch at once: what ``start``, ``BatchRun.add`` for each record and ``finish`` give."""
        run = self.start(now)
        for record in records:
            run.add(record)
        return run.finish()

    def start(self, now: int) -> BatchRun:
        """A batch to process at engine time ``now``: ``add`` its records one by one, then ``finish``."""
        return BatchRun(self, now)

    def _count(self, partition: int, customer_id: str, state: CustomerState, before: dict[str, str | None]) -> None:
        census = _of(self.censuses, partition, Census)
        if customer_id in before:
            census.moved(before[customer_id], state.source_channel)
        else:
            census.count(state.source_channel)

    def rebuild(self, partitions: set[int], entries: Iterable[tuple[bytes, bytes]]) -> int:
        """Index the given partitions from their table entries (key, value): the customers'
        deadlines, which of them an earlier catalog evaluated (to re-evaluate), and the audience
        figures, with the holders of each tag counted from the states themselves.

        Called when partitions are assigned, once the table is recovered, and when the catalog
        changes. Reads three fields of each state, not the whole state. Returns how many customers.
        """
        self.deadlines = {p: DeadlineIndex() for p in partitions}
        self.stale = {p: [] for p in partitions}
        self.audiences = {p: Audience() for p in partitions}
        self.censuses = {p: Census() for p in partitions}
        self.cache.drop_partitions(partitions)
        version = self.catalog.version
        count = 0
        for key, encoded in entries:
            if not is_customer_key(key):
                place = audience_day_of(key)
                if place is not None and place[0] in self.audiences:
                    self.audiences[place[0]].load_day(place[1], decode_audience_day(encoded))
                continue
            partition = partition_for(key, self.partitions)
            index = self.deadlines.get(partition)
            if index is None:
                continue
            count += 1
            customer_id = key.decode()
            index.set(customer_id, peek_deadline(encoded))
            self.audiences[partition].holders.update(peek_tags(encoded))
            self.censuses[partition].count(peek_source_channel(encoded))
            if peek_catalog_version(encoded) != version:
                self.stale[partition].append(customer_id)
        return count

    def customer_count(self) -> int:
        """Customers of the indexed partitions, from their censuses."""
        return sum(census.customers for census in self.censuses.values())

    def stale_count(self) -> int:
        return sum(len(customers) for customers in self.stale.values())

    def _load_state(self, partition: int, customer_id: str) -> CustomerState | None:
        state = self.cache.get(customer_id)
        if state is not None:
            return state
        encoded = self.load(partition, customer_id.encode())
        return decode_state(encoded) if encoded is not None else None


def _of(per_partition: dict[int, T], partition: int, make: Callable[[], T]) -> T:
    """A partition's entry of ``per_partition``, made on first use (not on every lookup, as
    ``setdefault(partition, make())`` would: once per customer of every batch)."""
    found = per_partition.get(partition)
    if found is None:
        found = per_partition[partition] = make()
    return found


def _append_step(writes: dict[bytes, bytes | None], change: TagChange) -> None:
    """Store a change in its customer's history, and forget the step that falls out of it."""
    writes[history_key(change.customer_id, change.seq)] = encode_step(step_of(change))
    if change.seq > KEEP_STEPS:
        writes[history_key(change.customer_id, change.seq - KEEP_STEPS)] = None


class BatchRun:
    """One batch in the making: the customers it touched so far and its outputs. ``add`` each
    record, then ``finish``, which encodes the touched customers and brings the deadline index,
    audiences, census and cache up to date with them. States are changed in place (the cache holds
    the very objects), and a tick pops the deadlines it fires as it goes."""

    def __init__(self, processor: BatchProcessor, now: int) -> None:
        self.processor = processor
        self.batch = Batch()
        self.now = now
        self.states: dict[str, CustomerState] = {}
        self.homes: dict[str, int] = {}
        self.channels_before: dict[str, str | None] = {}  # of customers known before this batch

    def add(self, record: Record) -> None:
        """Apply one input record (an event, or a tick of its partition)."""
        read = self.batch.read
        read[record.topic] = read.get(record.topic, 0) + 1
        if record.topic == TICKS:
            self._tick(record.partition)
        else:
            self._event(record)

    def finish(self) -> Batch:
        """Encode every customer the batch touched, once, with its history steps and the moved
        audience figures; update the deadline index, the cache and the census. Returns the batch."""
        processor, batch = self.processor, self.batch
        changes: dict[str, list[TagChange]] = defaultdict(list)
        for change in batch.changes:
            changes[change.customer_id].append(change)
        for customer_id, state in self.states.items():
            home = self.homes[customer_id]
            writes = batch.states.setdefault(home, {})
            writes[customer_id.encode()] = encode_state(state)
            if customer_id in changes:
                batch.changed.append(state)
                audience = _of(processor.audiences, home, Audience)
                for change in changes[customer_id]:
                    audience.move(change.from_tag, change.to_tag, change.effective_at)
                    _append_step(writes, change)
            _of(processor.deadlines, home, DeadlineIndex).set(customer_id, state.next_deadline)
            processor.cache.put(home, state)
            processor._count(home, customer_id, state, self.channels_before)
        for home, writes in batch.states.items():
            moved = processor.audiences.get(home)
            for day, figures in moved.take_dirty().items() if moved is not None else ():
                writes[audience_key(home, day)] = encode_audience_day(figures)
        return batch

    def _event(self, record: Record) -> None:
        batch, now = self.batch, self.now
        try:
            event = parse_event(record.topic, record.value, now)
        except InvalidEvent as invalid:
            batch.dead_letters.append(self._dead_letter(record, invalid.reason, invalid.message))
            return
        home = partition_for(event.customer_id.encode(), self.processor.partitions)
        if home != record.partition:
            # Keyed differently (or not at all): processing it here would split the customer's
            # state across partitions, so it goes to the partition that owns the customer.
            batch.reroutes.append((record, event.customer_id, home))
            return
        state = self._current(home, event.customer_id)
        known = state is not None
        state = state or CustomerState(event.customer_id)
        result = process_event(self.processor.catalog, state, event, now)
        if result.rejected is not None:
            batch.dead_letters.append(self._dead_letter(record, result.rejected.reason, result.rejected.message))
        elif result.outcome is Outcome.DUPLICATE:
            batch.duplicates += 1
        else:
            batch.applied[record.topic] = batch.applied.get(record.topic, 0) + 1
        batch.changes += result.changes
        batch.tasks += result.tasks
        if known or result.rejected is None:  # a rejected event alone makes no one known
            self.states[event.customer_id] = state
            self.homes[event.customer_id] = home

    def _tick(self, partition: int) -> None:
        """A tick: fire the partition's due deadlines, oldest first, then re-evaluate customers
        a previous catalog evaluated; at most a timer batch of each."""
        index = self.processor.deadlines.get(partition)
        if index is None:
            return  # not (yet) indexed here: the tick came before the rebuild, a later one will do
        limit = self.processor.timer_batch
        for deadline, customer_id in index.pop_due(self.now, limit):
            state = self._current(partition, customer_id)
            if state is not None:
                self._keep(partition, state, fire_deadlines(self.processor.catalog, state, self.now))
                self.batch.fire_delays.append(self.now - deadline)
        stale = self.processor.stale.get(partition, [])
        for customer_id in stale[-limit:]:
            self._current(partition, customer_id)  # re-evaluates it if a previous catalog did
        del stale[-limit:]
        audience = self.processor.audiences.get(partition)
        if audience is not None:
            for day in audience.prune(self.now):
                self.batch.states.setdefault(partition, {})[audience_key(partition, day)] = None
        self.batch.ticked.add(partition)

    def _current(self, partition: int, customer_id: str) -> CustomerState | None:
        """The customer's state, re-evaluated first if a previous catalog evaluated it."""
        state = self.states.get(customer_id)
        if state is None:
            state = self.processor._load_state(partition, customer_id)
            if state is not None:
                self.channels_before.setdefault(customer_id, state.source_channel)
        catalog = self.processor.catalog
        if state is not None and state.catalog_version not in ("", catalog.version):
            self._keep(partition, state, reevaluate(catalog, state, self.now))
            self.batch.reevaluated += 1
        return state

    def _keep(self, partition: int, state: CustomerState, result: Result) -> None:
        self.batch.changes += result.changes
        self.batch.tasks += result.tasks
        self.states[state.customer_id] = state
        self.homes[state.customer_id] = partition

    def _dead_letter(self, record: Record, reason: str, message: str) -> DeadLetter:
        return DeadLetter(
            source_topic=self.processor.topic_prefix + record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            error=message,
            reason=reason,
            received_at=self.now,
        )
