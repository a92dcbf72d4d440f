"""The live worker on a real Kafka broker: events in, tag changes, tasks and dead letters out."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest

from connectors.partitioning import partition_for
from rules.catalog import load_default_catalog
from state.times import SECOND, format_timestamp
from streams.cli import run_replay
from tests.conftest import Services
from tests.eventually import eventually
from tests.streams.harness import Collector, Worker, produce, unique_name, worker_env

pytestmark = pytest.mark.integration

PARTITIONS = 4


class Pipeline:
    """One worker with its own topics, plus collectors on its outputs."""

    def __init__(self, services: Services, folder: Path) -> None:
        self.kafka = services.kafka
        self.prefix = unique_name() + "-"
        self.folder = folder
        self.env = worker_env(self.kafka, self.prefix, folder)
        self.worker = Worker(self.env, folder)

    def topic(self, name: str) -> str:
        return self.prefix + name

    async def send(self, *events: tuple[str, dict[str, object] | bytes], key: bytes | None = b"") -> None:
        records = []
        for topic, value in events:
            raw = value if isinstance(value, bytes) else orjson.dumps(value)
            record_key = key
            if key == b"" and isinstance(value, dict):
                record_key = str(value["customer_id"]).encode()
            records.append((self.topic(topic), record_key or None, raw))
        await produce(self.kafka, records)


@pytest.fixture
async def pipeline(services: Services, tmp_path: Path) -> AsyncIterator[Pipeline]:
    pipe = Pipeline(services, tmp_path)
    pipe.worker.start()
    try:
        await pipe.worker.ready()
        yield pipe
    finally:
        pipe.worker.stop()


def now_iso(offset_seconds: float = 0) -> str:
    return format_timestamp(time.time_ns() // 1000 + int(offset_seconds * SECOND))


def order(customer: str, event_id: str, order_id: str, amount: str = "100", status: str = "paid") -> dict[str, object]:
    return {
        "event_id": event_id, "customer_id": customer, "occurred_at": now_iso(),
        "order_id": order_id, "amount": amount, "status": status,
    }


def moves(changes: list[dict[str, object]], customer: str) -> list[tuple[object, ...]]:
    return [(c["dimension"], c["from"], c["to"]) for c in changes if c["customer_id"] == customer]


async def test_first_paid_order_makes_a_new_active_customer_and_a_welcome_task(pipeline: Pipeline) -> None:
    profile = {"event_id": "p1", "customer_id": "alice", "occurred_at": now_iso(), "owner_rep": "rep-7",
               "phone": "13800138000", "email": "alice@example.com"}
    async with Collector(pipeline.kafka, pipeline.topic("tag-changes")) as changes, \
            Collector(pipeline.kafka, pipeline.topic("tasks")) as tasks:
        await pipeline.send(("customers", profile))
        await changes.wait_for(lambda m: len(m) >= 1, what="prospect")
        await pipeline.send(("orders", order("alice", "e1", "o1")))
        await changes.wait_for(lambda m: len(m) >= 4, what="new, active, standard")
        await tasks.wait_for(lambda m: len(m) >= 1, what="welcome task")

    assert moves(changes.messages, "alice") == [
        ("lifecycle", None, "prospect"),
        ("lifecycle", "prospect", "new"),
        ("activity", None, "active"),
        ("value", None, "standard"),
    ]
    assert [c["seq"] for c in changes.messages] == [1, 2, 3, 4]
    assert changes.messages[1]["change_id"] == "alice:2"
    assert changes.messages[1]["trigger"] == "event" and changes.messages[1]["event_id"] == "e1"
    task = tasks.messages[0]
    assert (task["assignee"], task["title"], task["rule_id"], task["change_id"]) == (
        "rep-7", "New customer: welcome call", "lifecycle.new", "alice:2",
    )
    published = orjson.dumps(changes.messages) + orjson.dumps(tasks.messages)
    assert b"13800138000" not in published and b"alice@example.com" not in published


async def test_invalid_records_go_to_dead_letters_and_processing_goes_on(pipeline: Pipeline) -> None:
    bad = [
        ("orders", b'{"event_id": "x1", "customer_id": '),  # malformed JSON
        ("orders", b"\xff\xfe not utf-8"),
        ("logins", orjson.dumps({"event_id": "x2", "occurred_at": now_iso()})),  # no customer_id
        ("followups", orjson.dumps({"event_id": "x3", "customer_id": "bob", "occurred_at": now_iso(),
                                    "rep_id": "r1", "stage": "sleeping"})),  # unknown stage
        ("logins", orjson.dumps({"event_id": "x4", "customer_id": "bob", "occurred_at": now_iso(3600)})),
        ("logins", b'{"pad": "' + b"x" * (65 * 1024) + b'"}'),  # oversized
        ("orders", orjson.dumps(order("bob", "x5", "never-paid", status="refunded"))),
        # Too large to be dead-lettered whole: 1.2 MB as escaped JSON, 1.33 MB as base64.
        ("logins", b"\x01" * 200_000),
        ("orders", bytes(range(256)) * 3900),
    ]
    async with Collector(pipeline.kafka, pipeline.topic("dead-letters")) as dead, \
            Collector(pipeline.kafka, pipeline.topic("tag-changes")) as changes:
        await pipeline.send(*bad, key=b"bob")
        await pipeline.send(("logins", {"event_id": "ok1", "customer_id": "bob", "occurred_at": now_iso()}))
        await dead.wait_for(lambda m: len(m) >= len(bad), what="all bad records dead-lettered")
        await changes.wait_for(lambda m: ("activity", None, "active") in moves(m, "bob"), what="bob active")

    reasons = sorted(str(m["reason"]) for m in dead.messages)
    assert reasons == sorted(["malformed_json", "malformed_json", "missing_field", "unknown_enum",
                              "in_future", "too_large", "refund_unknown_order", "too_large", "too_large"])
    cut = sorted((m for m in dead.messages if m.get("truncated")), key=lambda m: str(m["source_topic"]))
    assert [(m["source_topic"], m["value_length"]) for m in cut] == [
        (pipeline.topic("logins"), 200_000), (pipeline.topic("orders"), 256 * 3900),
    ]
    non_utf8 = next(m for m in dead.messages if m["value_encoding"] == "base64" and not m.get("truncated"))
    assert non_utf8["source_topic"] == pipeline.topic("orders") and non_utf8["key"] == "bob"
    assert all({"partition", "offset", "error", "received_at"} <= m.keys() for m in dead.messages)
    # The refund of an unknown order made nobody known, but the valid login did.
    assert moves(changes.messages, "bob") == [("lifecycle", None, "prospect"), ("activity", None, "active")]
    # The counters move once the batch is committed, a moment after its outputs are delivered.
    expected = (
        b'tagengine_invalid_events_total{reason="malformed_json"} 2.0',
        b'tagengine_invalid_events_total{reason="refund_unknown_order"} 1.0',
        b'tagengine_events_in_total{topic="logins"} 5.0',
        b'tagengine_events_applied_total{topic="logins"} 1.0',
        b'tagengine_tag_changes_total{dimension="activity",tag="active",trigger="event"} 1.0',
        b'tagengine_consumer_lag{partition="0",topic="logins"} 0.0',
    )

    await eventually(lambda: pipeline.worker.shows_metrics(*expected), what=f"metrics {expected}")


async def test_a_redelivered_event_does_not_count_twice(pipeline: Pipeline) -> None:
    first = order("carol", "e1", "o1", amount="3000")
    retry_with_new_id = {**order("carol", "e2", "o1", amount="3000")}
    async with Collector(pipeline.kafka, pipeline.topic("tag-changes")) as changes:
        await pipeline.send(("orders", first), ("orders", first), ("orders", retry_with_new_id))
        await pipeline.send(("logins", {"event_id": "l1", "customer_id": "carol", "occurred_at": now_iso()}))
        await changes.wait_for(lambda m: any(c["event_id"] == "e1" for c in m), what="order applied")
    facts = await _facts(pipeline, "carol", lambda f: f.get("days_since_last_activity") is not None)
    assert facts["paid_orders_total"] == 1
    assert facts["spend_180d"] == 3000  # over 2000: potential_high_value, counted once
    assert ("value", None, "potential_high_value") in moves(changes.messages, "carol")


async def test_a_record_keyed_to_another_partition_is_processed_by_the_owner(pipeline: Pipeline) -> None:
    customer = "dave"
    home = partition_for(customer.encode(), PARTITIONS)
    wrong = (home + 1) % PARTITIONS
    login = {"event_id": "w1", "customer_id": customer, "occurred_at": now_iso()}
    async with Collector(pipeline.kafka, pipeline.topic("tag-changes")) as changes:
        await produce(pipeline.kafka, [(pipeline.topic("logins"), None, orjson.dumps(login))],
                      partition_of=lambda topic, key: wrong)
        await changes.wait_for(lambda m: len(m) >= 2, what="dave prospect + active")
    assert moves(changes.messages, customer) == [("lifecycle", None, "prospect"), ("activity", None, "active")]
    state = pipeline.worker.customer(customer)
    assert state is not None and state["seq"] == 2


async def test_worker_killed_and_restarted_continues_from_its_state(services: Services, tmp_path: Path) -> None:
    pipe = Pipeline(services, tmp_path)
    pipe.worker.start()
    try:
        await pipe.worker.ready()
        async with Collector(pipe.kafka, pipe.topic("tag-changes")) as changes:
            await pipe.send(*[("orders", order("erin", f"e{n}", f"o{n}", amount="1100")) for n in range(3)])
            await changes.wait_for(lambda m: any(c["to"] == "potential_high_value" for c in m), what="3 orders")
            pipe.worker.kill()  # most likely before its offsets were committed: they will be re-read
            pipe.worker = Worker(pipe.env, tmp_path, name="worker-2").start()
            await pipe.worker.ready()
            await pipe.send(*[("orders", order("erin", f"e{n}", f"o{n}", amount="1100")) for n in range(3, 5)])
            await changes.wait_for(lambda m: any(c["to"] == "high_value" for c in m), what="5 orders")
            facts = await _facts(pipe, "erin", lambda f: f.get("paid_orders_total") == 5)
        assert facts["spend_180d"] == 5500 and facts["paid_orders_180d"] == 5
        # Re-published changes keep their id and content: one meaning per change_id.
        by_id: dict[object, dict[str, object]] = {}
        for change in changes.messages:
            content = {k: v for k, v in change.items() if k not in ("emitted_at", "reason")}
            assert by_id.setdefault(change["change_id"], content) == content
        seqs = sorted({int(str(c["seq"])) for c in changes.messages})
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        pipe.worker.stop()


async def test_live_pipeline_and_replay_agree(pipeline: Pipeline) -> None:
    from connectors.generator import demo_events

    start = time.time_ns() // 1000 - 60 * SECOND
    records = list(_take(demo_events(40, seed=11, start=start, step=20_000, broken=0.02), 600))
    lines = [orjson.dumps({"topic": r.topic, "value": _json_or_text(r.value)}) for r in records]
    out = io.BytesIO()
    replay = run_replay(load_default_catalog(), lines, "events", out, io.StringIO()).replay
    expected = [orjson.loads(line) for line in out.getvalue().splitlines()]

    # Live, the four topics are read concurrently, so one customer's order and login could be
    # applied in either order. Sending in rounds, the n-th event of every customer per round and
    # the next round once the worker has read this one, gives each customer the replay's order.
    per_customer: dict[bytes, list[object]] = {}
    for r in records:
        per_customer.setdefault(r.key, []).append(r)
    rounds = [[events[n] for events in per_customer.values() if n < len(events)]
              for n in range(max(len(events) for events in per_customer.values()))]
    async with Collector(pipeline.kafka, pipeline.topic("tag-changes")) as changes:
        sent = 0
        for batch in rounds:
            await produce(pipeline.kafka, [(pipeline.topic(r.topic), r.key, r.value) for r in batch])  # type: ignore[attr-defined]
            sent += len(batch)
            await _read_at_least(pipeline, sent)
        await changes.wait_for(lambda m: len(m) >= len(expected), what=f"{len(expected)} changes")
        final = {cid: await _final_tags(pipeline, cid) for cid in replay.customers}

    keep = ("change_id", "dimension", "from", "to", "trigger", "event_id", "effective_at")
    assert sorted(tuple(c[k] for k in keep) for c in changes.messages) == sorted(
        tuple(c[k] for k in keep) for c in expected
    )
    for customer_id, state in replay.customers.items():
        assert final[customer_id] == sorted(state.tags), customer_id


async def _read_at_least(pipe: Pipeline, count: int) -> None:
    """Until the worker has read ``count`` input records (its events_in counter)."""

    async def read() -> bool:
        _, metrics = await asyncio.to_thread(pipe.worker.get, "/metrics")
        return sum(float(v) for v in re.findall(rb"^tagengine_events_in_total\{[^}]*\} (\S+)$", metrics, re.M)) >= count

    await eventually(read, what=f"worker read {count} records")


async def _facts(pipe: Pipeline, customer: str, ready: Callable[[dict[str, object]], bool]) -> dict[str, object]:
    async def facts() -> dict[str, object] | None:
        document = await asyncio.to_thread(pipe.worker.customer, customer)
        found: dict[str, object] = document["facts"] if document else {}  # type: ignore[assignment]
        return found if document and ready(found) else None

    return await eventually(facts, what=f"customer {customer}: facts ready")


async def _final_tags(pipe: Pipeline, customer: str) -> list[str]:
    document = await asyncio.to_thread(pipe.worker.customer, customer)
    return sorted(document["tags"]) if document else []  # type: ignore[arg-type]


def _take(iterator, count):  # type: ignore[no-untyped-def]
    for index, item in enumerate(iterator):
        if index >= count:
            return
        yield item


def _json_or_text(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode()


async def test_two_engines_with_different_prefixes_on_one_broker_share_nothing(
    services: Services, tmp_path: Path
) -> None:
    """Without TAGENGINE_APP_ID, the group and the changelog are named after the topic prefix."""
    pipes = [Pipeline(services, tmp_path / name) for name in ("a", "b")]
    for pipe in pipes:
        del pipe.env["TAGENGINE_APP_ID"]
        pipe.worker.start()
    try:
        for pipe in pipes:
            await pipe.worker.ready()
        for pipe in pipes:
            async with Collector(pipe.kafka, pipe.topic("tag-changes")) as changes:
                await pipe.send(("orders", order("fay", "f1", "o1")))
                await changes.wait_for(lambda m: ("lifecycle", None, "new") in moves(m, "fay"), what="fay new")
    finally:
        for pipe in pipes:
            pipe.worker.stop()


async def test_health_is_ok_with_every_owned_partition_and_its_lag(pipeline: Pipeline) -> None:
    await pipeline.send(("logins", {"event_id": "h1", "customer_id": "hal", "occurred_at": now_iso()}))
    await _read_at_least(pipeline, 1)
    status, body = pipeline.worker.get("/health")
    health = orjson.loads(body)
    assert status == 200 and health["status"] == "ok" and health["stalled"] == []
    assert health["partitions"] == list(range(PARTITIONS))
    assert health["lag"]["logins[0]"] == 0 and len(health["lag"]) == 5 * PARTITIONS  # 4 inputs + ticks
