"""The commit of one batch: state and outputs reach Kafka in an order that survives any crash.

The steps, each awaited before the next (``BatchCommit.commit``):

1. **State with its outbox.** Every customer the batch changed is written to the changelog (one
   record batch per partition, explicit partitions), its tag changes and tasks in the record's
   headers.
2. **Outputs.** Tag changes, tasks, dead letters and re-routed records are written to their
   topics, and every delivery is awaited.
3. **Confirmation.** A marker goes to each changelog partition the batch wrote (not awaited), and
   the local store takes the states with the changelog offset they reached.

Only then may the batch's input offsets be committed (``streams/pipeline.py`` does that).

What a crash at any point leaves behind:

- before step 1 completes: outputs were not sent; the events are read again and processed anew;
- between 1 and 3: the changelog holds the new state, the outputs may be partly missing. Whoever
  recovers the partition finds the records after the last marker and sends their outboxes again
  (``CustomerTable.take_unconfirmed``): byte-identical messages, since they were stored, not
  recomputed. The re-read events are recognised as duplicates by the recovered state;
- after 3: everything is delivered; re-read events are duplicates.

So a consumer of ``tag-changes`` and ``tasks`` may see a message twice, always with identical
content, and never misses one. A write that fails is retried with the same bytes; one that keeps
failing stops the worker (``CommitFailed``) rather than let it commit past it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError, KafkaTimeoutError

from connectors.kafka_admin import OUTPUT_TOPICS
from connectors.publisher import OutRecord, Publisher
from streams.customer_table import CustomerTable
from streams.messages import change_message, dead_letter_bytes, dumps, task_message
from streams.processor import Batch

log = logging.getLogger(__name__)

RETRY_FOR = 60.0
"""Seconds a failing write is retried (broker restarts, leader moves) before the worker stops."""


class CommitFailed(RuntimeError):
    """A write did not reach Kafka in time; the batch cannot be committed."""


class BatchCommit:
    def __init__(
        self,
        publisher: Publisher,
        table: CustomerTable,
        topic: Callable[[str], str],
        retry_for: float = RETRY_FOR,
        after_changelog: Callable[[], None] = lambda: None,
    ) -> None:
        self.publisher = publisher
        self.table = table
        self.changes, self.tasks, self.dead_letters = (topic(name) for name in OUTPUT_TOPICS)
        self.topic = topic
        self.retry_for = retry_for
        self.after_changelog = after_changelog  # fault tests stop the process here

    async def commit(self, batch: Batch, now: int) -> None:
        outboxes = self._outboxes(batch, now)
        changelog = self.table.changelog_topic_name
        state_records = [
            OutRecord(changelog, key, value, partition, tuple(outboxes.get(key, ())))
            for partition, states in batch.states.items()
            for key, value in states.items()
        ]
        offsets = await self._deliver(state_records, "customer states")
        if state_records:
            self.after_changelog()
        outputs = [OutRecord(topic, key, value) for key, messages in outboxes.items() for topic, value in messages]
        outputs += [OutRecord(self.dead_letters, dead.key, dead_letter_bytes(dead)) for dead in batch.dead_letters]
        outputs += [
            OutRecord(self.topic(record.topic), customer_id.encode(), record.value or b"", partition)
            for record, customer_id, partition in batch.reroutes
        ]
        await self._deliver(outputs, "outputs")
        if batch.states:
            await self.publisher.send_soon(self.table.confirm(batch.states))
        for partition, states in batch.states.items():
            self.table.write(partition, states, offsets[(changelog, partition)])

    async def resend_unconfirmed(self, partitions: set[int]) -> int:
        """Send again the outputs of batches a previous owner of these partitions may not have
        delivered (found during recovery), then confirm them. Returns how many messages."""
        records = self.table.take_unconfirmed(partitions)
        if records:
            await self._deliver(records, "unconfirmed outputs")
            await self.publisher.send_soon(self.table.confirm(partitions))
            log.info("sent again %d outputs of partitions %s that may not have been delivered before",
                     len(records), sorted(partitions))
        return len(records)

    def _outboxes(self, batch: Batch, now: int) -> dict[bytes, list[tuple[str, bytes]]]:
        """Each customer's outputs of this batch, encoded once: (topic, message) in order."""
        outboxes: dict[bytes, list[tuple[str, bytes]]] = defaultdict(list)
        for change in batch.changes:
            outboxes[change.customer_id.encode()].append((self.changes, dumps(change_message(change, now))))
        for task in batch.tasks:
            outboxes[task.customer_id.encode()].append((self.tasks, dumps(task_message(task))))
        return outboxes

    async def _deliver(self, records: list[OutRecord], what: str) -> dict[tuple[str, int], int]:
        if not records:
            return {}
        return await retrying(lambda: self.publisher.send(records), what, self.retry_for)


async def retrying(
    attempt: Callable[[], Awaitable[dict[tuple[str, int], int]]], what: str, retry_for: float
) -> dict[tuple[str, int], int]:
    """``attempt()`` until it succeeds, backing off up to 2 s between tries, for ``retry_for`` s."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + retry_for
    pause = 0.1
    while True:
        try:
            return await attempt()
        except KafkaError as error:
            # A timeout means "not known to have arrived": sending the same bytes again is safe.
            if not error.retriable and not isinstance(error, KafkaTimeoutError):
                raise CommitFailed(f"writing {what} failed: {error!r}") from error
            if loop.time() + pause > give_up:
                raise CommitFailed(f"writing {what} kept failing for {retry_for:.0f} s: {error!r}") from error
            log.warning("writing %s failed (%r); trying again in %.1f s", what, error, pause)
            await asyncio.sleep(pause)
            pause = min(2.0, pause * 2)
