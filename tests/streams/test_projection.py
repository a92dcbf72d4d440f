"""The Redis projection of a live worker: it follows the state, survives Redis going away, and
``tagengine redis-sync`` rebuilds it from the changelog."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from state.times import format_timestamp
from tests.conftest import Services
from tests.eventually import eventually
from tests.private_redis import PrivateRedis
from tests.streams.harness import ROOT, Collector, Worker, produce, unique_name, worker_env

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A Redis of the test's own that keeps its data (AOF) when stopped and started again."""
    server = PrivateRedis(tmp_path / "redis", keep_data=True)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def worker(services: Services, redis_server: PrivateRedis, tmp_path: Path) -> AsyncIterator[Worker]:
    env = worker_env(services.kafka, unique_name() + "-", tmp_path / "w", REDIS_URL=redis_server.url)
    process = Worker(env, tmp_path / "w").start()
    try:
        await process.ready()
        yield process
    finally:
        process.stop()


async def orders(worker: Worker, customers: list[str], start: int) -> None:
    now = format_timestamp(time.time_ns() // 1000)
    prefix = worker.env["TAGENGINE_TOPIC_PREFIX"]
    await produce(worker.env["KAFKA_BOOTSTRAP_SERVERS"], [
        (prefix + "orders", c.encode(), orjson.dumps({
            "event_id": f"{c}-{start}", "customer_id": c, "occurred_at": now, "order_id": f"{c}-{start}",
            "amount": "1500", "status": "paid"}))
        for c in customers
    ])


async def engine_view(worker: Worker, customers: list[str]) -> dict[str, dict[str, object]]:
    view = {}
    for customer in customers:
        document = await asyncio.to_thread(worker.customer, customer)
        assert document is not None, customer
        view[customer] = document["tags"]  # type: ignore[assignment]
    return view


async def redis_view(worker: Worker, url: str, customers: list[str]) -> dict[str, dict[str, object]]:
    """The projection of these customers, under the engine's namespace (its app id)."""
    namespace = worker.env["TAGENGINE_APP_ID"]
    client = aioredis.from_url(url)
    try:
        view = {}
        for customer in customers:
            fields = await client.hgetall(f"{namespace}:customer:{customer}")
            view[customer] = {k.decode(): orjson.loads(v) for k, v in fields.items()}
        return view
    finally:
        await client.aclose()


async def converge(worker: Worker, url: str, customers: list[str], timeout: float = 60) -> None:
    async def equal() -> bool:
        expected = await engine_view(worker, customers)
        try:
            return await redis_view(worker, url, customers) == expected
        except (ConnectionError, OSError, RedisError):  # Redis down for the moment: look again
            return False

    await eventually(equal, timeout, what="the Redis projection equals the engine's state", interval=0.2)


async def test_projection_follows_the_state_and_catches_up_after_redis_comes_back(
    worker: Worker, redis_server: PrivateRedis
) -> None:
    customers = [f"p{n:02d}" for n in range(30)]
    prefix = worker.env["TAGENGINE_TOPIC_PREFIX"]
    async with Collector(worker.env["KAFKA_BOOTSTRAP_SERVERS"], prefix + "tag-changes") as changes:
        await orders(worker, customers, 1)
        await changes.wait_for(lambda m: len(m) >= 3 * 30, what="new, active, standard")
        await converge(worker, redis_server.url, customers)

        redis_server.stop()
        await orders(worker, customers, 2)  # 3000 over 180 days: potential_high_value
        await changes.wait_for(lambda m: sum(c["to"] == "potential_high_value" for c in m) == 30, what="upgrades")
        await eventually(lambda: worker.shows_metrics(b"tagengine_projection_pending 30.0"),
                         what="30 snapshots held, not lost, while Redis is away")

        await redis_server.start()
        await converge(worker, redis_server.url, customers)
    members = await _members(worker, redis_server.url, "potential_high_value")
    assert members == set(customers)


async def tagged(worker: Worker, url: str, name: str) -> list[str]:
    """20 customers with one order each (new, active, standard), shown in Redis."""
    customers = [f"{name}{n:02d}" for n in range(20)]
    prefix = worker.env["TAGENGINE_TOPIC_PREFIX"]
    async with Collector(worker.env["KAFKA_BOOTSTRAP_SERVERS"], prefix + "tag-changes") as changes:
        await orders(worker, customers, 1)
        await changes.wait_for(lambda m: len(m) >= 3 * 20, what="20 customers tagged")
    await converge(worker, url, customers)
    return customers


async def test_redis_restarted_empty_is_noticed_and_the_projection_written_again(
    worker: Worker, redis_server: PrivateRedis
) -> None:
    customers = await tagged(worker, redis_server.url, "e")
    redis_server.stop()
    shutil.rmtree(redis_server.folder)
    redis_server.folder.mkdir()
    await redis_server.start()
    await converge(worker, redis_server.url, customers)  # no new event: the worker noticed by itself
    assert await _members(worker, redis_server.url, "new") == set(customers)


async def test_redis_sync_rebuilds_the_projection_from_the_changelog(
    worker: Worker, redis_server: PrivateRedis
) -> None:
    customers = await tagged(worker, redis_server.url, "s")
    expected = await engine_view(worker, customers)
    worker.stop()  # the rebuild must come from the changelog, not from a worker noticing the flush
    client = aioredis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "streams.cli", "redis-sync"], env=worker.env, cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote the tags of" in result.stderr
    assert await redis_view(worker, redis_server.url, customers) == expected
    assert await _members(worker, redis_server.url, "new") == set(customers)


async def _members(worker: Worker, url: str, tag: str) -> set[str]:
    client = aioredis.from_url(url)
    try:
        return {m.decode() for m in await client.smembers(f"{worker.env['TAGENGINE_APP_ID']}:tag:{tag}")}
    finally:
        await client.aclose()
