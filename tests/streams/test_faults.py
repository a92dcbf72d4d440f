"""Crashes on the real broker: whatever moment a worker dies, every tag change and task reaches its
topic, with one content per id, and the changes equal what replay makes of the same events.

The load is orders only, so each customer's events are on one input partition and the live order
of a customer's events is the order they were sent: exactly what replay is given.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from rules.catalog import load_default_catalog
from rules.engine import TagChange
from rules.history import step_of
from rules.replay import Replay
from state.events import parse_event
from state.history import fold
from state.times import HOUR, format_timestamp, wall_clock
from streams.messages import change_from_message, task_message
from streams.web import interval_document
from tests.conftest import Services
from tests.eventually import eventually
from tests.streams.harness import Collector, Group, PrivateBroker, Worker, produce

pytestmark = pytest.mark.integration

CUSTOMERS = 120
ORDERS_EACH = 8


@dataclass
class Load:
    """Orders of many customers, sent in rounds (one order of every customer per round)."""

    group: Group
    seed: int
    sent: list[dict[str, object]] = field(default_factory=list)

    def rounds(self) -> list[list[dict[str, object]]]:
        rng = random.Random(self.seed)
        rounds: list[list[dict[str, object]]] = [[] for _ in range(ORDERS_EACH)]
        for number in range(CUSTOMERS):
            customer = f"k{self.seed}-{number:03d}"
            for index in range(ORDERS_EACH):
                status = "refunded" if index and rng.random() < 0.15 else "paid"
                order = index - 1 if status == "refunded" else index
                rounds[index].append({"event_id": f"{customer}-{index}", "customer_id": customer,
                                      "order_id": f"{customer}-o{order}", "status": status,
                                      "amount": str(rng.choice((300, 900, 1500, 2600)))})
        return rounds

    async def send(self, pause: float, rounds: slice = slice(None)) -> None:
        """Every round (or those of ``rounds``), each event stamped with the moment it is sent."""
        for events in self.rounds()[rounds]:
            for event in events:
                event["occurred_at"] = format_timestamp(wall_clock())
            await produce(self.group.kafka, [(self.group.topic("orders"), str(e["customer_id"]).encode(),
                                              orjson.dumps(e)) for e in events])
            self.sent += events
            await asyncio.sleep(pause)

    def replayed(self) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        """(changes, tasks) replay makes of the events sent, as the worker would publish them."""
        replay, changes, tasks = Replay(load_default_catalog()), [], []
        for value in self.sent:
            for result in replay.apply(parse_event("orders", orjson.dumps(value), wall_clock())):
                changes += [{"change_id": c.change_id, "dimension": c.dimension, "from": c.from_tag,
                             "to": c.to_tag, "trigger": c.trigger, "event_id": c.event_id,
                             "effective_at": format_timestamp(c.effective_at)} for c in result.changes]
                tasks += [task_message(t) for t in result.tasks]
        return changes, tasks


@pytest.fixture
async def group(services: Services, tmp_path: Path) -> AsyncIterator[Group]:
    group = Group(services.kafka, tmp_path, TAGENGINE_PARTITIONS="4")
    try:
        yield group
    finally:
        group.stop()


async def test_kill_9_at_any_moment_loses_no_change_and_gives_each_change_one_content(group: Group) -> None:
    worker = group.start("w1")
    await worker.ready()
    load = Load(group, seed=1)
    async with Collector(group.kafka, group.topic("tag-changes")) as changes, \
            Collector(group.kafka, group.topic("tasks")) as tasks:
        sending = asyncio.create_task(load.send(pause=0.4))
        for attempt, after in enumerate((1.2, 0.4, 0.05)):  # busy, catching up, just recovered
            await asyncio.sleep(after)
            worker.kill()
            worker = group.restart(worker, f"w1-{attempt + 2}")
            await worker.ready()
        await sending
        await _check_against_replay(load, changes, tasks)
        await _check_history_and_audiences(worker, changes)


async def test_a_worker_joining_under_load_and_one_dying_lose_nothing(group: Group) -> None:
    first = group.start("w1")
    await first.ready()
    load = Load(group, seed=3)
    async with Collector(group.kafka, group.topic("tag-changes")) as changes, \
            Collector(group.kafka, group.topic("tasks")) as tasks:
        sending = asyncio.create_task(load.send(pause=0.4))
        await asyncio.sleep(0.8)
        second = group.start("w2")  # joins while the first is busy: partitions move mid-stream
        await second.ready()
        first.kill()  # and the survivor takes the first one's partitions over
        await sending
        await _check_against_replay(load, changes, tasks)
        # Whatever the first worker had processed before it died, the survivor now answers for.
        await eventually(lambda: _owns(second, [0, 1, 2, 3]), 60, what="the survivor owns every partition")
        await _check_history_and_audiences(second, changes)


async def test_a_worker_that_dies_between_changelog_and_outputs_sends_those_outputs_after_restart(
    group: Group,
) -> None:
    group.env["TAGENGINE_FAULT_EXIT_AFTER_CHANGELOG"] = "3"
    worker = group.start("w1")
    await worker.ready()
    load = Load(group, seed=2)
    async with Collector(group.kafka, group.topic("tag-changes")) as changes, \
            Collector(group.kafka, group.topic("tasks")) as tasks:
        await load.send(pause=0.2)
        await _exited(worker)
        worker.env["TAGENGINE_FAULT_EXIT_AFTER_CHANGELOG"] = "0"
        again = group.restart(worker, "w1-again")
        await again.ready()
        await _check_against_replay(load, changes, tasks)
    assert "sent again" in again.log_path.read_text()


async def test_a_broker_restart_mid_batch_loses_nothing_and_the_worker_carries_on(tmp_path: Path) -> None:
    broker = PrivateBroker(tmp_path / "broker")
    await asyncio.to_thread(broker.start)
    group = Group(broker.bootstrap, tmp_path, TAGENGINE_PARTITIONS="4")
    try:
        worker = group.start("w1")
        await worker.ready()
        load = Load(group, seed=5)
        async with Collector(group.kafka, group.topic("tag-changes")) as changes, \
                Collector(group.kafka, group.topic("tasks")) as tasks:
            await load.send(pause=0.1, rounds=slice(0, 4))
            broker.kill()  # while the worker works on the last rounds: its commit must wait and retry
            await asyncio.to_thread(broker.start_again)
            await load.send(pause=0.1, rounds=slice(4, None))
            await _check_against_replay(load, changes, tasks)
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
    finally:
        group.stop()
        broker.stop()


async def _exited(worker: Worker, timeout: float = 60) -> None:
    await eventually(lambda: worker.process is None or worker.process.poll() is not None, timeout,
                     what=f"{worker.name} stopped at its fault point")
    assert "fault test: exiting after a changelog write" in worker.log_path.read_text()


async def _check_against_replay(load: Load, changes: Collector, tasks: Collector) -> None:
    expected_changes, expected_tasks = load.replayed()
    await changes.wait_for(lambda m: len({c["change_id"] for c in m}) >= len(expected_changes), timeout=90,
                           what=f"{len(expected_changes)} distinct changes")
    await tasks.wait_for(lambda m: len({t["task_id"] for t in m}) >= len(expected_tasks), timeout=30,
                         what=f"{len(expected_tasks)} distinct tasks")
    by_id: dict[object, dict[str, object]] = {}
    for change in changes.messages:  # a change sent twice is sent with the same bytes
        assert by_id.setdefault(change["change_id"], change) == change, change["change_id"]
    keys = ("change_id", "dimension", "from", "to", "trigger", "event_id", "effective_at")
    assert sorted(tuple(c[k] for k in keys) for c in by_id.values()) == sorted(
        tuple(c[k] for k in keys) for c in expected_changes
    )
    seqs: dict[str, set[int]] = {}
    for change in by_id.values():
        seqs.setdefault(str(change["customer_id"]), set()).add(int(str(change["seq"])))
    assert all(numbers == set(range(1, len(numbers) + 1)) for numbers in seqs.values())
    published = {str(t["task_id"]): t for t in tasks.messages}
    assert len(published) == len(expected_tasks)
    for task in expected_tasks:
        assert orjson.loads(orjson.dumps(published[str(task["task_id"])])) == orjson.loads(orjson.dumps(task))


async def _check_history_and_audiences(worker: Worker, changes: Collector) -> None:
    """What the workers keep of the past (histories, audiences, holders) equals what folding the
    published changes gives."""
    published: dict[str, dict[int, TagChange]] = defaultdict(dict)
    for message in changes.messages:
        change = change_from_message(message)
        published[change.customer_id][change.seq] = change
    for customer, by_seq in published.items():
        expected = fold(step_of(change) for change in by_seq.values())
        assert await _history(worker, customer) == [interval_document(customer, i) for i in expected], customer

    everything = [change for by_seq in published.values() for change in by_seq.values()]
    start = min(change.effective_at for change in everything) // HOUR * HOUR - HOUR
    end = wall_clock() // HOUR * HOUR + HOUR
    for tag in {change.to_tag for change in everything if change.to_tag}:
        status, body = await asyncio.to_thread(
            worker.get, f"/tags/{tag}/audience?step=1h&from={format_timestamp(start)}&to={format_timestamp(end)}")
        assert status == 200, body
        points = orjson.loads(body)["points"]
        ends = range(start + HOUR, end + 1, HOUR)
        assert points == [[format_timestamp(at), _holders(everything, tag, at)] for at in ends], tag
    _, body = await asyncio.to_thread(worker.get, "/tags")
    counts = {t["tag"]: t["customers"] for d in orjson.loads(body)["dimensions"] for t in d["tags"]}
    assert counts == {tag: _holders(everything, tag, end) for tag in counts}


async def _owns(worker: Worker, partitions: list[int]) -> bool:
    status, body = await asyncio.to_thread(worker.get, "/health")
    return status == 200 and orjson.loads(body)["partitions"] == partitions


def _holders(changes: list[TagChange], tag: str, at: int) -> int:
    """Customers holding ``tag`` just before ``at``, by the changes that took effect before it."""
    return sum((c.to_tag == tag) - (c.from_tag == tag) for c in changes if c.effective_at < at)


async def _history(worker: Worker, customer: str) -> list[object]:
    """A customer's whole history from the API, two intervals a page."""
    intervals: list[object] = []
    cursor = ""
    while True:
        status, body = await asyncio.to_thread(worker.get, f"/customers/{customer}/history?limit=2&cursor={cursor}")
        assert status == 200, body
        answer = orjson.loads(body)
        intervals += answer["intervals"]
        if answer["cursor"] is None:
            return intervals
        cursor = answer["cursor"]
