"""Tag validity periods in a live worker on a real broker (SPEC section 9), against replay.

The test writes a catalog whose ``welcome`` tag is valid for 5 s, so its expiry passes while the
test watches: the worker removes it on time with no event, puts the next holding tag in its place,
does not give it back while its condition keeps holding, and publishes exactly what ``tagengine
replay`` computes from the same events.
"""

from __future__ import annotations

import asyncio
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

VALID_FOR = 5 * SECOND
CATALOG = """\
catalog: validity-seconds
languages: [en]
dimensions:
  offer:
    exclusive: true
    name: {en: Offer}
    tags:
      welcome:
        name: {en: Welcome offer}
        definition: {en: Active over the last hour; offered for 5 seconds at most.}
        when: age(last_activity) < 1h
        valid_for: 5s
      regular:
        name: {en: Regular offer}
        definition: {en: Active over the last hour.}
        when: age(last_activity) < 1h
"""


class Cluster(Group):
    """Workers with the validity catalog, and a way to send logins."""

    def __init__(self, services: Services, folder: Path) -> None:
        self.catalog = folder / "validity.yaml"
        self.catalog.write_text(CATALOG, encoding="utf-8")
        super().__init__(services.kafka, folder, TAGENGINE_CATALOG=str(self.catalog))

    async def login(self, customer: str, event_id: str) -> bytes:
        """A login of the customer, now; returns its replay input line."""
        value = {"event_id": event_id, "customer_id": customer,
                 "occurred_at": format_timestamp(time.time_ns() // 1000)}
        await produce(self.kafka, [(self.topic("logins"), customer.encode(), orjson.dumps(value))])
        return orjson.dumps({"topic": "logins", "value": value})

    def replay(self, lines: list[bytes], until: int) -> list[dict[str, object]]:
        out = io.BytesIO()
        run_replay(load_catalog(self.catalog), lines, "events", out, io.StringIO(), until=until)
        return [orjson.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
async def cluster(services: Services, tmp_path: Path) -> AsyncIterator[Cluster]:
    engine = Cluster(services, tmp_path)
    try:
        yield engine
    finally:
        engine.stop()


def at(change: dict[str, object], key: str) -> int:
    return parse_timestamp(str(change[key]))


async def test_a_tag_expires_live_at_since_plus_valid_for_and_is_not_given_back(cluster: Cluster) -> None:
    worker = cluster.start("w1")
    await worker.ready()
    async with Collector(cluster.kafka, cluster.topic("tag-changes")) as changes:
        lines = [await cluster.login("vic", "l-1")]
        await changes.wait_for(lambda m: any(c.get("from") == "welcome" for c in m), timeout=30, what="expiry")
        entered, expired = changes.messages[:2]
        # The condition still holds: a login after the expiry must not bring welcome back.
        lines.append(await cluster.login("vic", "l-2"))
        await eventually(lambda: worker.shows_metrics(b'tagengine_events_applied_total{topic="logins"} 2.0'),
                         what="the second login applied")
    assert (entered["from"], entered["to"], entered["trigger"]) == (None, "welcome", "event")
    assert (expired["from"], expired["to"], expired["trigger"]) == ("welcome", "regular", "timer")
    assert expired["event_id"] is None and expired["rule_id"] == "offer.regular"
    assert at(expired, "effective_at") == at(entered, "effective_at") + VALID_FOR
    delay = at(expired, "emitted_at") - at(expired, "effective_at")
    assert 0 <= delay < SECOND, f"expired {delay / SECOND:.3f} s after its moment"
    assert expired["reason"] == {"expired": True, "days_since_last_activity": round(5 / 86400, 6)}
    # The worker's own state, committed with the second login: still regular, no change since.
    state = await asyncio.to_thread(worker.customer, "vic")
    assert state is not None and state["seq"] == 2
    assert isinstance(state["tags"], dict) and list(state["tags"]) == ["regular"]
    # The history archives the stay in welcome as expired.
    _, body = await asyncio.to_thread(worker.get, "/customers/vic/history?tag=welcome")
    [stay] = orjson.loads(body)["intervals"]
    assert (stay["expired"], stay["left_at"], stay["left"]["change_id"]) == (True, expired["effective_at"], "vic:2")
    last_login = parse_timestamp(orjson.loads(lines[-1])["value"]["occurred_at"])
    assert_same_changes(changes.messages, cluster.replay(lines, last_login + 10 * SECOND))
