"""The Redis projection against a real Redis: layout, seq ordering, removals, outages, rebuild."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from connectors.redis_projection import RedisProjection, Snapshot, rebuild
from state.codec import encode_state
from state.customer import CustomerState, TagState
from state.times import DAY, format_timestamp, parse_timestamp
from tests.conftest import Services
from tests.eventually import eventually
from tests.private_redis import PrivateRedis

pytestmark = pytest.mark.integration

T0 = parse_timestamp("2026-11-22T10:00:00Z")


def snap(customer_id: str, seq: int, **tags: str) -> Snapshot:
    """tags: tag -> dimension; ``since`` derives from the seq so every version differs."""
    return Snapshot(customer_id, seq, {tag: TagState(dim, T0 + seq * DAY, seq) for tag, dim in tags.items()})


def field(dimension: str, tag: str, seq: int) -> dict[str, object]:
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((T0 + seq * DAY) // 1_000_000))
    return {"dimension": dimension, "since": since, "rule_id": f"{dimension}.{tag}", "seq": seq}


@pytest.fixture
def redis_url(services: Services) -> str:
    if not services.redis:
        pytest.skip("no Redis (REDIS_URL=none)")
    return services.redis


@pytest.fixture
async def db(redis_url: str) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A client and a key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client, prefix
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.unlink(*keys[start : start + 1000])
    finally:
        await client.aclose()


@pytest.fixture
async def projection(redis_url: str, db: tuple[aioredis.Redis, str]) -> AsyncIterator[RedisProjection]:
    p = RedisProjection(redis_url, prefix=db[1], retry_seconds=0.05, max_retry_seconds=0.5)
    p.start()
    try:
        yield p
    finally:
        await p.close()


async def caught_up(p: RedisProjection, timeout: float = 30.0) -> None:
    await eventually(lambda: p.pending() == 0, timeout, what="projection caught up")


async def hash_of(client: aioredis.Redis, prefix: str, customer_id: str) -> dict[str, object]:
    raw = await client.hgetall(f"{prefix}:customer:{customer_id}")
    return {k.decode(): orjson.loads(v) for k, v in raw.items()}


async def members(client: aioredis.Redis, prefix: str, tag: str) -> set[str]:
    return {m.decode() for m in await client.smembers(f"{prefix}:tag:{tag}")}


async def test_snapshot_writes_hash_fields_and_tag_sets(
    projection: RedisProjection, db: tuple[aioredis.Redis, str]
) -> None:
    client, prefix = db
    projection.offer(snap("c1", 3, new="lifecycle", high_value="value"))
    projection.offer(snap("c2", 1, new="lifecycle"))
    await caught_up(projection)

    assert await hash_of(client, prefix, "c1") == {
        "new": field("lifecycle", "new", 3),
        "high_value": field("value", "high_value", 3),
    }
    assert (await hash_of(client, prefix, "c2"))["new"] == {
        "dimension": "lifecycle", "since": "2026-11-23T10:00:00Z", "rule_id": "lifecycle.new", "seq": 1,
    }
    assert await members(client, prefix, "new") == {"c1", "c2"}
    assert await members(client, prefix, "high_value") == {"c1"}
    assert await client.get(f"{prefix}:seq:c1") == b"3"
    assert (projection.written, projection.errors, projection.lag_seconds()) == (2, 0, 0.0)


async def test_snapshot_of_a_state_copies_its_tags_and_formats_since() -> None:
    state = CustomerState("c9", seq=7)
    state.tags["vip"] = TagState("value", parse_timestamp("2026-01-02T03:04:05.5Z"), 7)
    snapshot = Snapshot.of(state)
    state.tags.clear()  # the engine goes on changing the state
    assert Snapshot.decode(encode_state(CustomerState("c9", seq=7, tags=dict(snapshot.tags)))) == snapshot
    tag, value = snapshot.fields()
    assert tag == "vip"
    assert orjson.loads(value) == {
        "dimension": "value", "since": "2026-01-02T03:04:05.500Z", "rule_id": "value.vip", "seq": 7,
    }


async def test_an_older_seq_never_overwrites_a_newer_one(
    projection: RedisProjection, db: tuple[aioredis.Redis, str]
) -> None:
    client, prefix = db
    projection.offer(snap("c1", 5, churn_warning="risk"))
    await caught_up(projection)
    projection.offer(snap("c1", 4, silent="risk"))  # late: Redis already shows seq 5
    projection.offer(snap("c2", 2, silent="risk"))
    await caught_up(projection)
    assert await hash_of(client, prefix, "c1") == {"churn_warning": field("risk", "churn_warning", 5)}
    assert await members(client, prefix, "silent") == {"c2"}
    assert projection.stale == 1



async def test_a_burst_collapses_to_the_newest_snapshot(redis_url: str, db: tuple[aioredis.Redis, str]) -> None:
    client, prefix = db
    queued = RedisProjection(redis_url, prefix=prefix)
    try:
        for seq in (9, 7, 10, 8):
            queued.offer(snap("c3", seq, **{f"t{seq}": "d"}))
        assert queued.pending() == 1 and queued.offered == 4
        queued.start()
        await caught_up(queued)
        assert list(await hash_of(client, prefix, "c3")) == ["t10"]
        assert queued.written == 1
    finally:
        await queued.close()


async def test_applying_is_order_insensitive(redis_url: str, db: tuple[aioredis.Redis, str]) -> None:
    """Every snapshot of a customer's history, applied in a random order, leaves the newest."""
    client, prefix = db
    history = [
        snap("c1", 1, new="lifecycle"),
        snap("c1", 2, new="lifecycle", high_intent="intent"),
        snap("c1", 3, active="lifecycle", high_intent="intent"),
        snap("c1", 4, active="lifecycle"),
        snap("c1", 5, active="lifecycle", vip="value"),
    ]
    order = history[:]
    random.Random(7).shuffle(order)
    for snapshot in order:  # one projection per snapshot: no collapsing in the queue
        p = RedisProjection(redis_url, prefix=prefix)
        p.offer(snapshot)
        p.start()
        await caught_up(p)
        await p.close()
    assert await hash_of(client, prefix, "c1") == {
        "active": field("lifecycle", "active", 5), "vip": field("value", "vip", 5),
    }
    for tag in ("new", "high_intent"):
        assert await members(client, prefix, tag) == set()
    assert await members(client, prefix, "vip") == {"c1"}


async def test_removed_tags_leave_hash_and_set(projection: RedisProjection, db: tuple[aioredis.Redis, str]) -> None:
    client, prefix = db
    projection.offer(snap("c1", 1, new="lifecycle", high_intent="intent"))
    projection.offer(snap("c2", 1, high_intent="intent"))
    await caught_up(projection)
    projection.offer(snap("c1", 2, active="lifecycle"))  # new -> active, high_intent dropped
    await caught_up(projection)
    assert await hash_of(client, prefix, "c1") == {"active": field("lifecycle", "active", 2)}
    assert await members(client, prefix, "new") == set()
    assert await members(client, prefix, "high_intent") == {"c2"}

    projection.offer(snap("c1", 3))  # no tags left: no hash, but the seq stays
    await caught_up(projection)
    assert not await client.exists(f"{prefix}:customer:c1")
    assert await members(client, prefix, "active") == set()
    assert await client.get(f"{prefix}:seq:c1") == b"3"
    projection.offer(snap("c1", 2, active="lifecycle"))  # a late older snapshot cannot resurrect
    await caught_up(projection)
    assert not await client.exists(f"{prefix}:customer:c1")
    assert await members(client, prefix, "active") == set()


@pytest.fixture
async def throwaway_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A Redis of the test's own, keeping nothing on disk: started again, it is empty."""
    server = PrivateRedis(tmp_path / "redis")
    await server.start()
    try:
        yield server
    finally:
        server.kill()


async def content(client: aioredis.Redis, prefix: str = "tagengine") -> dict[str, object]:
    """Everything under the prefix: hashes as dicts, sets as sets, strings as text."""
    out: dict[str, object] = {}
    async for raw in client.scan_iter(match=f"{prefix}:*", count=1000):
        key = raw.decode()
        kind = (await client.type(key)).decode()
        if kind == "hash":
            out[key] = {k.decode(): orjson.loads(v) for k, v in (await client.hgetall(key)).items()}
        elif kind == "set":
            out[key] = {m.decode() for m in await client.smembers(key)}
        else:
            out[key] = (await client.get(key)).decode()
    return out


def layout(snapshots: Iterable[Snapshot], prefix: str = "tagengine") -> dict[str, object]:
    """What Redis must hold for these snapshots (SPEC section 6)."""
    out: dict[str, object] = {}
    for s in snapshots:
        out[f"{prefix}:seq:{s.customer_id}"] = str(s.seq)
        if s.tags:
            out[f"{prefix}:customer:{s.customer_id}"] = {
                tag: {"dimension": held.dimension, "since": format_timestamp(held.since),
                      "rule_id": f"{held.dimension}.{tag}", "seq": held.seq}
                for tag, held in s.tags.items()
            }
        for tag in s.tags:
            members = out.setdefault(f"{prefix}:tag:{tag}", set())
            assert isinstance(members, set)
            members.add(s.customer_id)
    return out


async def test_engine_keeps_accepting_while_redis_is_down_and_catches_up(throwaway_redis: PrivateRedis) -> None:
    p = RedisProjection(throwaway_redis.url, retry_seconds=0.02, max_retry_seconds=0.2)
    client = aioredis.Redis.from_url(throwaway_redis.url)
    p.start()
    try:
        for i in range(200):
            p.offer(snap(f"c{i}", 1, new="lifecycle"))
        await caught_up(p)
        assert await client.scard("tagengine:tag:new") == 200

        throwaway_redis.kill()
        latest: dict[str, Snapshot] = {}
        started = time.perf_counter()
        for round_ in range(2, 6):  # round 2 changes every customer, later rounds some of them
            for i in range(0, 200, 1 if round_ == 2 else round_):
                tags = {"active": "lifecycle"} if i % 2 else {"active": "lifecycle", "vip": "value"}
                if round_ == 5 and i % 10 == 0:
                    tags = {}  # lost every tag
                latest[f"c{i}"] = snap(f"c{i}", round_, **tags)
                p.offer(latest[f"c{i}"])
            await asyncio.sleep(0.05)  # let the loop try, fail and back off
        assert time.perf_counter() - started < 2  # offer never waited for Redis
        await eventually(lambda: p.errors > 0, what="an error seen")
        assert p.pending() == 200  # all kept while Redis is down, one per customer
        assert p.lag_seconds() > 0

        # Same port; empty, as it keeps nothing on disk: everything written before is gone.
        await throwaway_redis.start()
        await client.connection_pool.disconnect()  # the test's own client: its connection died
        await caught_up(p)
        assert p.errors > 0 and p.lag_seconds() == 0.0 and p.written == 400
        assert await content(client) == layout(latest.values())
    finally:
        await p.close()
        await client.aclose()


async def test_outage_without_restart_loses_nothing(throwaway_redis: PrivateRedis, tmp_path: Path) -> None:
    """Redis unreachable but keeping its data (here: paused with SIGSTOP, then timeouts)."""
    p = RedisProjection(throwaway_redis.url, retry_seconds=0.02, max_retry_seconds=0.2, socket_timeout=0.3)
    client = aioredis.Redis.from_url(throwaway_redis.url)
    p.start()
    assert throwaway_redis.process is not None
    try:
        for i in range(50):
            p.offer(snap(f"c{i}", 1, new="lifecycle"))
        await caught_up(p)
        throwaway_redis.process.send_signal(19)  # SIGSTOP
        for i in range(50):
            p.offer(snap(f"c{i}", 2, active="lifecycle"))
        await eventually(lambda: p.errors > 0, what="an error seen")
        throwaway_redis.process.send_signal(18)  # SIGCONT
        await caught_up(p)
    finally:
        await p.close()
    try:
        assert await client.scard("tagengine:tag:new") == 0
        assert await client.scard("tagengine:tag:active") == 50
        for i in range(50):
            assert await client.get(f"tagengine:seq:c{i}") == b"2"
    finally:
        await client.aclose()


async def test_rebuild_writes_every_customer_from_encoded_states(
    redis_url: str, db: tuple[aioredis.Redis, str]
) -> None:
    client, prefix = db
    states = []
    for i in range(1200):
        state = CustomerState(f"c{i}", seq=i % 7 + 1)
        state.tags["new" if i % 2 else "active"] = TagState("lifecycle", T0, state.seq)
        if i % 3 == 0:
            state.tags["vip"] = TagState("value", T0 + DAY, state.seq)
        states.append(state)
    # Stale and foreign content in Redis: c0 with a tag it lost; "ghost", unknown to the state.
    old = RedisProjection(redis_url, prefix=prefix)
    old.offer(Snapshot("c0", 0, {"silent": TagState("risk", T0, 0)}))
    old.offer(snap("ghost", 4, vip="value"))
    old.start()
    await caught_up(old)
    await old.close()

    async def from_table() -> AsyncIterator[tuple[str, bytes | None]]:
        yield "tombstone", None
        for state in states:
            yield state.customer_id, encode_state(state)

    seen: list[int] = []
    count = await rebuild(redis_url, from_table(), prefix=prefix, batch=500, progress=seen.append)
    assert count == 1200 and seen == [500, 1000, 1200]
    vip = {s.customer_id for s in states if "vip" in s.tags}
    assert await members(client, prefix, "vip") == vip | {"ghost"}  # left alone by default
    assert await members(client, prefix, "new") == {s.customer_id for s in states if "new" in s.tags}
    assert await hash_of(client, prefix, "c3") == {
        "new": {"dimension": "lifecycle", "since": "2026-11-22T10:00:00Z", "rule_id": "lifecycle.new", "seq": 4},
        "vip": {"dimension": "value", "since": "2026-11-23T10:00:00Z", "rule_id": "value.vip", "seq": 4},
    }
    assert await members(client, prefix, "silent") == set()  # c0's newer state removed it

    # Again, from a plain iterable, deleting what the state does not know.
    await client.sadd(f"{prefix}:tag:vip", "c1")  # drift: a set member whose hash lacks the tag
    count = await rebuild(redis_url, ((s.customer_id, encode_state(s)) for s in states), prefix=prefix,
                          delete_missing=True)
    assert count == 1200
    assert await members(client, prefix, "vip") == vip
    assert not await client.exists(f"{prefix}:customer:ghost", f"{prefix}:seq:ghost")


async def test_ten_thousand_customers_with_one_tag(
    projection: RedisProjection, db: tuple[aioredis.Redis, str], capsys: pytest.CaptureFixture[str]
) -> None:
    client, prefix = db
    started = time.perf_counter()
    for i in range(10_000):
        projection.offer(snap(f"c{i:05d}", 1, high_value="value"))
    offered = time.perf_counter() - started
    await caught_up(projection, timeout=60)
    elapsed = time.perf_counter() - started
    found: set[str] = set()
    async for member in client.sscan_iter(f"{prefix}:tag:high_value", count=1000):
        found.add(member.decode())
    assert found == {f"c{i:05d}" for i in range(10_000)}
    assert projection.written == 10_000 and projection.errors == 0
    with capsys.disabled():
        print(f"\n10,000 snapshots: offered in {offered * 1000:.0f} ms, in Redis after {elapsed:.2f} s "
              f"({10_000 / elapsed:,.0f} snapshots/s)")
