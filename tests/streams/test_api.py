"""The HTTP API and catalog changes on live workers (real broker): what SPEC section 6 promises."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from state.times import format_timestamp
from tests.conftest import Services
from tests.eventually import eventually
from tests.streams.harness import Collector, Group, Worker, produce

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"
NEW_CATALOG = b"""
catalog: loyalty
languages: [en]
dimensions:
  loyalty:
    exclusive: true
    name: {en: Loyalty}
    tags:
      regular:
        name: {en: Regular}
        definition: {en: "At least 2 paid orders over 90 days."}
        when: paid_orders(90d) >= 2
      occasional:
        name: {en: Occasional}
        definition: {en: "Known, with fewer than 2 paid orders over 90 days."}
        when: paid_orders(90d) < 2
"""


class Shop(Group):
    """Workers with the admin token set, and a way to send orders."""

    def __init__(self, services: Services, folder: Path) -> None:
        super().__init__(services.kafka, folder, TAGENGINE_ADMIN_TOKEN=TOKEN)

    async def orders(self, customers: list[str], per_customer: int = 1) -> None:
        now = format_timestamp(time.time_ns() // 1000)
        await produce(self.kafka, [
            (self.topic("orders"), c.encode(), orjson.dumps({
                "event_id": f"{c}-{n}", "customer_id": c, "occurred_at": now, "order_id": f"{c}-o{n}",
                "amount": "10", "status": "paid"}))
            for c in customers for n in range(per_customer)
        ])


@pytest.fixture
async def group(services: Services, tmp_path: Path) -> AsyncIterator[Shop]:
    engines = Shop(services, tmp_path)
    try:
        yield engines
    finally:
        engines.stop()


async def call(worker: Worker, method: str, path: str, body: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    status, raw = await asyncio.to_thread(worker.request, method, path, body, headers)
    return status, orjson.loads(raw)


async def test_catalog_changes_need_the_admin_token(group: Shop) -> None:
    worker = group.start("w1")
    await worker.ready()
    assert (await call(worker, "PUT", "/catalog", NEW_CATALOG))[0] == 401
    assert (await call(worker, "PUT", "/catalog", NEW_CATALOG, {"Authorization": "Bearer wrong"}))[0] == 401
    status, answer = await call(worker, "PUT", "/catalog", b"catalog: x\ndimensions: 3\n",
                                {"Authorization": f"Bearer {TOKEN}"})
    assert status == 422 and "request:2: dimensions must be a mapping" in answer["problems"]  # type: ignore[operator]
    assert (await call(worker, "GET", "/catalog"))[1]["name"] == "default"


async def test_catalog_changes_are_refused_when_no_token_is_configured(services: Services, tmp_path: Path) -> None:
    group = Group(services.kafka, tmp_path)
    worker = group.start("w")
    try:
        await worker.ready()
        status, answer = await call(worker, "PUT", "/catalog", NEW_CATALOG, {"Authorization": "Bearer "})
        assert status == 403 and "TAGENGINE_ADMIN_TOKEN" in str(answer["error"])
    finally:
        group.stop()


async def test_dry_run_counts_match_what_the_catalog_change_then_does(group: Shop) -> None:
    first, second = await group.start_ready("w1", "w2")
    regulars = [f"r{n}" for n in range(10)]
    occasionals = [f"o{n}" for n in range(15)]
    async with Collector(group.kafka, group.topic("tag-changes")) as changes:
        await group.orders(regulars, per_customer=2)
        await group.orders(occasionals)
        await changes.wait_for(lambda m: len({c["customer_id"] for c in m}) == 25, what="25 customers known")
        status, dry = await call(first, "POST", "/catalog/dry-run", NEW_CATALOG)
        assert status == 200 and dry["customers"] == 25
        assert dry["tags"]["regular"] == {  # type: ignore[index]
            "enter": 10, "leave": 0, "tasks": 0, "enter_sample": sorted(regulars)[:5], "leave_sample": []}
        assert dry["tags"]["occasional"]["enter"] == 15  # type: ignore[index]
        assert dry["tags"]["new"]["leave"] == 25 and dry["tags"]["mature"]["leave"] == 0  # type: ignore[index]
        assert dry["tasks"] == 0
        assert not [c for c in changes.messages if c["trigger"] == "catalog"], "a dry run publishes nothing"

        status, put = await call(first, "PUT", "/catalog", NEW_CATALOG, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 202 and put["tasks"] == 0 and put["tags"] == dry["tags"]  # said before it is done
        catalog_changes = await changes.wait_for(
            lambda m: sum(1 for c in m if c["trigger"] == "catalog" and c["to"] is not None) == 25,
            what="every customer re-evaluated")
    moved = [c for c in catalog_changes if c["trigger"] == "catalog"]
    assert {c["catalog_version"] for c in moved} == {put["version"]}
    entered = {(c["to"]) for c in moved if c["to"]}
    assert sum(1 for c in moved if c["to"] == "regular") == 10 and entered == {"regular", "occasional"}
    left = sum(1 for c in moved if c["from"] is not None and c["to"] is None)
    assert left == sum(moves["leave"] for moves in dry["tags"].values())  # type: ignore[attr-defined]
    for worker in (first, second):
        await eventually(lambda w=worker: _catalog_is(w, put["version"]), 60, what="both workers switched")


async def _catalog_is(worker: Worker, version: object) -> bool:
    return (await call(worker, "GET", "/catalog"))[1]["version"] == version


async def test_any_worker_answers_for_any_customer_and_tags_count_everyone(group: Shop) -> None:
    first, second = await group.start_ready("w1", "w2")
    customers = [f"c{n:03d}" for n in range(40)]
    async with Collector(group.kafka, group.topic("tag-changes")) as changes:
        await group.orders(customers)
        await changes.wait_for(lambda m: len(m) >= 3 * len(customers), what="new, active, standard each")
    for customer in customers:
        for worker in (first, second):
            status, document = await call(worker, "GET", f"/customers/{customer}")
            assert status == 200 and set(document["tags"]) == {"new", "active", "standard"}, customer  # type: ignore[arg-type]
            assert document["tags"]["new"]["rule_id"] == "lifecycle.new"  # type: ignore[index]
    assert (await call(first, "GET", "/customers/nobody"))[0] == 404
    status, tags = await call(second, "GET", "/tags")
    counts = {t["tag"]: t["customers"] for d in tags["dimensions"] for t in d["tags"]}  # type: ignore[attr-defined]
    assert counts["new"] == 40 and counts["active"] == 40 and counts["mature"] == 0
    status, audience = await call(first, "GET", "/tags/new/audience?step=1h")
    # A week of hours by default: 169 buckets overlap it unless "now" falls on the hour.
    assert status == 200 and audience["points"][-1][1] == 40 and len(audience["points"]) >= 7 * 24  # type: ignore[index]
    status, overview = await call(second, "GET", "/overview?lang=zh")
    assert status == 200 and overview["customers"] == 40 and overview["events_in"] == 40  # type: ignore[index]
    assert overview["channels"] == {"": 40} and overview["dead_letters"] == 0  # type: ignore[index]
    assert overview["catalog"]["dimensions"][0]["tags"][1]["customers"] == 40  # type: ignore[index]  # new
    status, history = await call(second, "GET", "/customers/c007/history?tag=new")
    assert status == 200 and [i["tag"] for i in history["intervals"]] == ["new"]  # type: ignore[index]


async def test_questions_the_api_cannot_answer_get_a_clear_error(group: Shop) -> None:
    worker = group.start("w1")
    await worker.ready()
    for path, status, words in [
        ("/customers/nobody/history", 404, "unknown customer"),
        ("/customers/nobody/history?limit=0", 400, "limit must be a whole number from 1 to 1000"),
        ("/tags/new/customers?limit=-1", 400, "limit must be"),
        ("/tags/nothing/audience", 404, "unknown tag"),
        ("/tags/new/audience?step=5m", 400, "step must be one of 1h, 1d"),
        ("/tags/new/audience?from=yesterday", 400, "not an ISO-8601 timestamp"),
        ("/tags/new/audience?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400, "from must be before to"),
        ("/tags/new/audience?step=1h&from=2020-01-01T00:00:00Z", 400, "at most 10000 points"),
        ("/tags?lang=fr", 400, "unknown language 'fr': the catalog has en, zh"),
        ("/overview?lang=fr", 400, "unknown language 'fr'"),
    ]:
        answer = await call(worker, "GET", path)
        assert answer[0] == status and words in str(answer[1]["error"]), (path, answer)
    status, answer = await call(worker, "POST", "/catalog/dry-run", b"x" * (2 << 20))
    assert status == 413 and "is this the right file?" in str(answer["error"])


async def test_members_of_a_tag_page_through_every_customer_exactly_once(group: Shop) -> None:
    first, _ = await group.start_ready("w1", "w2")
    customers = [f"m{n:05d}" for n in range(10_000)]
    async with Collector(group.kafka, group.topic("tag-changes")) as changes:
        await group.orders(customers)
        await changes.wait_for(lambda m: len(m) >= 3 * len(customers), timeout=110, what="10,000 customers new")
    seen: list[str] = []
    cursor = ""
    while True:
        status, page = await call(first, "GET", f"/tags/new/customers?limit=1000&cursor={cursor}")
        assert status == 200
        seen += page["customers"]  # type: ignore[arg-type]
        if page["cursor"] is None:
            break
        cursor = str(page["cursor"])
    assert seen == sorted(customers)
