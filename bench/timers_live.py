"""Live deadlines, API and catalog change on one worker (issues 3 and 4), on the local broker.

1. N customers (default 100,000) log in; their deadlines (a catalog counted in seconds: silent
   150 s after the last activity, time for the worker to read N logins first) fall in a 20 s
   window, while a generator keeps sending other events.
   Fire delay = ``emitted_at - effective_at`` of every timer change, read from ``tag-changes``.
2. ``GET /customers/<id>`` requests per second on that worker (concurrent keep-alive clients).
3. A catalog change through ``PUT /catalog``: time until the worker has re-evaluated all N.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from bench.common import Results, percentile, progress
from bench.kafka import produce
from bench.live import Child, metric_sum
from connectors.kafka_admin import ensure_topics
from state.times import SECOND, format_timestamp, parse_timestamp

PARTITIONS = 8
BACKGROUND_RATE = 300  # other events per second while deadlines fire
TOKEN = "bench-token"
CATALOG = b"""
catalog: bench-seconds
languages: [en]
dimensions:
  activity:
    exclusive: true
    name: {en: Activity}
    tags:
      active:
        name: {en: Active}
        definition: {en: Last activity less than 150 seconds ago.}
        when: age(last_activity) < 150s
      silent:
        name: {en: Silent}
        definition: {en: Last activity 150 seconds ago or more.}
        when: age(last_activity) >= 150s
"""
CHANGED = CATALOG.replace(b"bench-seconds", b"bench-seconds-2").replace(b"Last activity less", b"Activity less")


def run(results: Results, bootstrap: str, env: dict[str, str], customers: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tagengine-bench-timers-") as folder:
        asyncio.run(_run(results, bootstrap, env, customers, Path(folder)))


async def _run(results: Results, bootstrap: str, env: dict[str, str], customers: int, folder: Path) -> None:
    prefix = f"bt{uuid.uuid4().hex[:8]}-"
    catalog = folder / "catalog.yaml"
    catalog.write_bytes(CATALOG)
    await ensure_topics(bootstrap, prefix, PARTITIONS)
    port_env = {
        **env, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": "none", "TAGENGINE_TOPIC_PREFIX": prefix,
        "TAGENGINE_APP_ID": prefix.rstrip("-"), "TAGENGINE_PARTITIONS": str(PARTITIONS),
        "TAGENGINE_STORE": "rocksdb", "TAGENGINE_DATADIR": str(folder / "data"), "TAGENGINE_CATALOG": str(catalog),
        "TAGENGINE_ADMIN_TOKEN": TOKEN,
    }
    worker = Child("timers-worker", "streams.cli", ["worker", "--loglevel", "warning"], port_env, folder)
    worker.env["TAGENGINE_WEB_PORT"] = str(worker.port)
    worker.env["TAGENGINE_ADVERTISED_URL"] = f"http://127.0.0.1:{worker.port}"
    background = ["generate", "--customers", "5000", "--rate", str(BACKGROUND_RATE)]
    generator = Child("timers-generator", "streams.cli", background, port_env, folder)
    try:
        worker.start()
        await _wait_ready(worker)
        await _fire_delay(results, bootstrap, prefix, worker, generator, customers)
        generator.stop()
        await _api_rate(results, worker, customers)
        await _catalog_change(results, worker, customers)
    finally:
        generator.stop()
        worker.stop()


async def _fire_delay(results: Results, bootstrap: str, prefix: str, worker: Child, generator: Child,
                      customers: int) -> None:
    start = time.time_ns() // 1000
    rng = random.Random(5)
    records = []
    for n in range(customers):
        at = start + rng.randrange(20 * SECOND)  # deadlines spread over 20 s
        value = {"event_id": f"t{n}", "customer_id": f"t{n:07d}", "occurred_at": format_timestamp(at)}
        records.append((prefix + "logins", f"t{n:07d}".encode(), orjson.dumps(value)))
    progress(f"timers: {customers:,} logins, deadlines 150-170 s from now, plus {BACKGROUND_RATE} other events/s")
    await produce(bootstrap, records)
    generator.start()
    timer_changes = await _collect_timer_changes(bootstrap, prefix + "tag-changes", customers, timeout=400)
    delays = sorted((parse_timestamp(c["emitted_at"]) - parse_timestamp(c["effective_at"])) / SECOND
                    for c in timer_changes)
    results.add("timers", "timer changes fired", len(delays), "changes", f"of {customers:,} pending")
    results.add("timers", "fire delay p50", percentile(delays, 0.5), "s",
                f"emitted_at - deadline, {BACKGROUND_RATE} events/s alongside")
    results.add("timers", "fire delay p99", percentile(delays, 0.99), "s")
    results.add("timers", "fire delay max", delays[-1] if delays else float("nan"), "s")


async def _collect_timer_changes(bootstrap: str, topic: str, expected: int, timeout: float) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[dict[str, str]] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout
        last_report = time.monotonic()
        while len(found) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    change = orjson.loads(record.value)
                    if change["trigger"] == "timer" and change["customer_id"].startswith("t"):
                        found.append(change)
            if time.monotonic() - last_report > 10:
                progress(f"timers: {len(found):,} of {expected:,} deadlines fired")
                last_report = time.monotonic()
    finally:
        await consumer.stop()
    return found


async def _api_rate(results: Results, worker: Child, customers: int, seconds: float = 8, clients: int = 16) -> None:
    progress(f"api: GET /customers/<id> for {seconds:.0f} s with {clients} concurrent clients")
    base = f"http://127.0.0.1:{worker.port}/customers/"
    done = 0
    errors = 0
    stop_at = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession, seed: int) -> None:
        nonlocal done, errors
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            async with session.get(f"{base}t{rng.randrange(customers):07d}") as response:
                await response.read()
                done += 1
                errors += response.status != 200

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session, n) for n in range(clients)))
    rate = done / (time.monotonic() - started)
    results.add("api", "GET /customers/<id>, one worker", rate, "req/s", f"{errors} errors, {clients} clients")


async def _catalog_change(results: Results, worker: Child, customers: int) -> None:
    progress(f"catalog: PUT /catalog, then wait until {customers:,} customers are re-evaluated")
    before = metric_sum(worker.port, "tagengine_catalog_reevaluated_total") or 0
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.put(
        f"http://127.0.0.1:{worker.port}/catalog", data=CHANGED, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as response:
        assert response.status == 202, await response.text()
    while time.monotonic() - started < 600:
        done = (metric_sum(worker.port, "tagengine_catalog_reevaluated_total") or 0) - before
        if done >= customers:
            break
        await asyncio.sleep(0.2)
    seconds = time.monotonic() - started
    results.add("catalog", f"re-evaluate {customers:,} customers live", seconds, "s",
                f"{done / seconds:,.0f} customers/s; 1M at this rate: {1_000_000 * seconds / max(done, 1):,.0f} s")


async def _wait_ready(worker: Child, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{worker.port}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"worker not ready:\n{worker.log_tail()}")
