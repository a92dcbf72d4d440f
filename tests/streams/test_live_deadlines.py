"""Time-driven transitions in live workers on a real broker, with a catalog counted in seconds.

The test catalog (``catalogs/seconds.yaml``) makes a customer silent 4 s after its last activity,
so deadlines pass while the test watches: with no event, across a SIGKILL and restart, and when
the worker owning a partition dies and another takes over. Every run is checked against
``tagengine replay`` of the same events: no transition lost, none doubled.
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from rules.catalog import load_catalog
from state.times import SECOND, format_timestamp, parse_timestamp
from streams.cli import run_replay
from tests.conftest import Services
from tests.eventually import eventually
from tests.streams.harness import Collector, Group, assert_same_changes, produce

pytestmark = pytest.mark.integration

CATALOG = Path(__file__).parent / "catalogs" / "seconds.yaml"
SILENT_AFTER = 4 * SECOND


class Cluster(Group):
    """Workers with the seconds catalog, and a way to send logins."""

    def __init__(self, services: Services, folder: Path) -> None:
        super().__init__(services.kafka, folder, TAGENGINE_CATALOG=str(CATALOG))

    async def logins(self, customers: list[str]) -> list[bytes]:
        """A login for each customer, now; returns the replay input lines."""
        lines, records = [], []
        for n, customer in enumerate(customers):
            value = {"event_id": f"l-{customer}-{n}", "customer_id": customer,
                     "occurred_at": format_timestamp(time.time_ns() // 1000)}
            records.append((self.topic("logins"), customer.encode(), orjson.dumps(value)))
            lines.append(orjson.dumps({"topic": "logins", "value": value}))
        await produce(self.kafka, records)
        return lines



@pytest.fixture
async def cluster(services: Services, tmp_path: Path) -> AsyncIterator[Cluster]:
    engine = Cluster(services, tmp_path)
    try:
        yield engine
    finally:
        engine.stop()


def silent(changes: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {c["customer_id"]: c for c in changes if c["to"] == "silent"}


def replay_changes(lines: list[bytes], until: int) -> list[dict[str, object]]:
    out = io.BytesIO()
    run_replay(load_catalog(CATALOG), lines, "events", out, io.StringIO(), until=until)
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


async def test_active_becomes_silent_within_a_second_of_its_deadline_with_no_event(cluster: Cluster) -> None:
    worker = cluster.start("w1")
    await worker.ready()
    async with Collector(cluster.kafka, cluster.topic("tag-changes")) as changes, \
            Collector(cluster.kafka, cluster.topic("tasks")) as tasks:
        lines = await cluster.logins(["ann"])
        await changes.wait_for(lambda m: "ann" in silent(m), timeout=30, what="ann silent")
        await tasks.wait_for(lambda m: len(m) >= 1, what="silent task")
    change = silent(changes.messages)["ann"]
    login_at = parse_timestamp(orjson.loads(lines[0])["value"]["occurred_at"])
    assert change["trigger"] == "timer" and change["event_id"] is None
    assert parse_timestamp(str(change["effective_at"])) == login_at + SILENT_AFTER
    delay = parse_timestamp(str(change["emitted_at"])) - parse_timestamp(str(change["effective_at"]))
    assert 0 <= delay < SECOND, f"fired {delay / SECOND:.3f} s after its deadline"
    assert change["reason"] == {"days_since_last_activity": round(4 / 86400, 6)}
    assert tasks.messages[0]["change_id"] == change["change_id"]
    assert_same_changes(changes.messages, replay_changes(lines, login_at + 10 * SECOND))
    await eventually(lambda: worker.shows_metrics(b"tagengine_deadline_fire_delay_seconds_count 1.0"),
                     what="the firing's delay observed")


async def test_a_killed_worker_fires_its_pending_deadlines_after_restart(cluster: Cluster) -> None:
    customers = [f"k{n}" for n in range(12)]
    worker = cluster.start("w1")
    await worker.ready()
    async with Collector(cluster.kafka, cluster.topic("tag-changes")) as changes:
        lines = await cluster.logins(customers)
        await changes.wait_for(lambda m: len(m) >= len(customers), what="all active")
        worker.kill()  # deadlines pending, offsets probably not committed
        restarted = cluster.restart(worker, "w1-restarted")
        await restarted.ready()
        await changes.wait_for(lambda m: len(silent(m)) == len(customers), timeout=60, what="all silent")
    last_login = max(parse_timestamp(orjson.loads(line)["value"]["occurred_at"]) for line in lines)
    assert_same_changes(changes.messages, replay_changes(lines, last_login + 10 * SECOND))


async def test_when_a_worker_dies_the_other_fires_the_deadlines_of_its_partitions(cluster: Cluster) -> None:
    customers = [f"m{n}" for n in range(16)]  # spread over all 4 partitions
    first, _ = await cluster.start_ready("w1", "w2")
    async with Collector(cluster.kafka, cluster.topic("tag-changes")) as changes:
        lines = await cluster.logins(customers)
        await changes.wait_for(lambda m: len(m) >= len(customers), what="all active")
        first.kill()
        await changes.wait_for(lambda m: len(silent(m)) == len(customers), timeout=60, what="all silent")
    last_login = max(parse_timestamp(orjson.loads(line)["value"]["occurred_at"]) for line in lines)
    assert_same_changes(changes.messages, replay_changes(lines, last_login + 10 * SECOND))
