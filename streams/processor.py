"""One batch of input records -> state writes and outputs. The agent's logic, without Faust.

The Faust agent (``streams/agent.py``) hands a batch of raw records to ``BatchProcessor.process``
and then performs what it returns: table writes, tag changes, tasks, dead letters and re-routed
records. Keeping this synchronous and free of Faust means: a batch is applied atomically with
respect to the event loop (no other coroutine can touch a customer mid-batch), each customer's
state is decoded and encoded once per batch however many of its events the batch holds, and the
logic is tested without a broker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiokafka.partitioner import murmur2

from rules.catalog import Catalog
from rules.engine import TagChange, Task, process_event
from state.codec import decode_state, encode_state
from state.customer import CustomerState, Outcome
from state.events import InvalidEvent, parse_event
from streams.messages import DeadLetter


@dataclass(frozen=True, slots=True)
class Record:
    """An input record as read from Kafka: logical topic name, position, raw key and value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class Batch:
    """What the agent must do after a batch: write states, publish outputs, count."""

    states: dict[int, dict[str, bytes]] = field(default_factory=dict)  # partition -> id -> state
    changes: list[TagChange] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    reroutes: list[tuple[Record, str, int]] = field(default_factory=list)  # record, key, partition
    applied: dict[str, int] = field(default_factory=dict)  # topic -> events applied
    duplicates: int = 0


def partition_for(customer_id: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives a key: where a customer lives."""
    return int(murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions


class BatchProcessor:
    """Applies batches of records to customer states held in a key-value table.

    ``load`` reads a customer's encoded state from the table of a partition (None if unknown).
    """

    def __init__(
        self,
        catalog: Catalog,
        partitions: int,
        load: Callable[[int, str], bytes | None],
        topic_prefix: str = "",
    ) -> None:
        self.topic_prefix = topic_prefix
        self.catalog = catalog
        self.partitions = partitions
        self.load = load

    def process(self, records: Iterable[Record], now: int) -> Batch:
        batch = Batch()
        states: dict[str, CustomerState] = {}
        homes: dict[str, int] = {}
        for record in records:
            try:
                event = parse_event(record.topic, record.value, now)
            except InvalidEvent as invalid:
                batch.dead_letters.append(self._dead_letter(record, invalid.reason, invalid.message, now))
                continue
            home = partition_for(event.customer_id, self.partitions)
            if home != record.partition:
                # Keyed differently (or not at all): processing it here would split the customer's
                # state across partitions, so it goes to the partition that owns the customer.
                batch.reroutes.append((record, event.customer_id, home))
                continue
            state = states.get(event.customer_id)
            if state is None:
                encoded = self.load(home, event.customer_id)
                state = decode_state(encoded) if encoded is not None else None
            known = state is not None
            state = state or CustomerState(event.customer_id)
            result = process_event(self.catalog, state, event, now)
            if result.rejected is not None:
                rejected = result.rejected
                batch.dead_letters.append(self._dead_letter(record, rejected.reason, rejected.message, now))
            elif result.outcome is Outcome.DUPLICATE:
                batch.duplicates += 1
            else:
                batch.applied[record.topic] = batch.applied.get(record.topic, 0) + 1
            batch.changes += result.changes
            batch.tasks += result.tasks
            if known or result.rejected is None:  # a rejected event alone makes no one known
                states[event.customer_id] = state
                homes[event.customer_id] = home
        for customer_id, state in states.items():
            batch.states.setdefault(homes[customer_id], {})[customer_id] = encode_state(state)
        return batch

    def _dead_letter(self, record: Record, reason: str, message: str, now: int) -> DeadLetter:
        return DeadLetter(
            source_topic=self.topic_prefix + record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            error=message,
            reason=reason,
            received_at=now,
        )
