"""GET /customers/<id>/explain on live workers (real broker): it agrees with the changes published."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from state.times import format_timestamp
from tests.conftest import Services
from tests.streams.harness import Collector, Group, Worker, produce

pytestmark = pytest.mark.integration


@pytest.fixture
async def group(services: Services, tmp_path: Path) -> AsyncIterator[Group]:
    engines = Group(services.kafka, tmp_path)
    try:
        yield engines
    finally:
        engines.stop()


async def explanation(worker: Worker, path: str) -> tuple[int, dict[str, object]]:
    status, raw = await asyncio.to_thread(worker.get, path)
    return status, orjson.loads(raw)


def tags_of(document: dict[str, object]) -> dict[str, dict[str, object]]:
    return {t["tag"]: t for d in document["dimensions"] for t in d["tags"]}  # type: ignore[attr-defined]


async def test_the_explanation_shows_the_tag_entered_with_the_values_its_change_carried(group: Group) -> None:
    workers = await group.start_ready("w1", "w2")
    now = format_timestamp(time.time_ns() // 1000)
    async with Collector(group.kafka, group.topic("tag-changes")) as changes:
        await produce(group.kafka, [
            (group.topic("orders"), b"vip", orjson.dumps({
                "event_id": f"vip-{n}", "customer_id": "vip", "occurred_at": now, "order_id": f"vip-o{n}",
                "amount": "1500", "status": "paid"}))
            for n in range(4)
        ])
        seen = await changes.wait_for(lambda m: any(c["to"] == "high_value" for c in m), what="vip is high value")
    entered = next(c for c in seen if c["to"] == "high_value")

    for worker in workers:  # one of them owns the customer, the other forwards the request
        status, document = await explanation(worker, "/customers/vip/explain")
        assert status == 200 and document["customer_id"] == "vip"
        high_value = tags_of(document)["high_value"]
        assert high_value["held"] is True and high_value["since"] == entered["effective_at"]
        assert high_value["reason"] == entered["reason"] == {"spend_180d": 6000, "paid_orders_180d": 4}
        assert high_value["values"] == {
            "spend(180d)": "6000.00", "spend(180d) > 5000": "true",
            "paid_orders(180d)": "4", "paid_orders(180d) > 3": "true",
        }
        assert tags_of(document)["potential_high_value"]["shadowed_by"] == "high_value"

    status, document = await explanation(workers[0], "/customers/vip/explain?lang=zh")
    assert status == 200 and tags_of(document)["high_value"]["name"] == "高价值客户"


async def test_an_unknown_customer_is_404_and_an_unknown_language_400(group: Group) -> None:
    worker = group.start("w1")
    await worker.ready()
    status, answer = await explanation(worker, "/customers/nobody/explain")
    assert status == 404 and answer["error"] == "unknown customer 'nobody'"
    status, answer = await explanation(worker, "/customers/nobody/explain?lang=fr")
    assert status == 400 and answer["error"] == "unknown language 'fr': the catalog has en, zh"
