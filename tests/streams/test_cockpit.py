"""The cockpit as a person sees it (issue 10): the page at ``/`` of a live group of two workers, in
Debian's headless chromium driven by Playwright, fed with known customers.

The customers below are chosen so that every chart has a known answer: ten customers from four
source channels (one unknown), at every lifecycle stage and every step of the deal funnel. The
page is opened once and never reloaded; every test checks it still has not been.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import orjson
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from rules.catalog import default_catalog_path
from state.times import DAY, format_timestamp
from tests.conftest import ROOT, Services
from tests.eventually import eventually
from tests.streams.harness import Group, Worker, produce

# One event loop for the module: the workers, the browser and the page are shared by its tests.
# The first run on a machine may install chromium, hence the longer timeout.
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(600)]

CHROMIUM = Path("/usr/bin/chromium")
# As the machine's notes advise: no background connections, which its closed network refuses.
CHROMIUM_ARGS = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
T = TypeVar("T")
BUILT = ROOT / "cockpit" / "build" / "echarts.min.js"

# customer: (source channel, paid orders as (days ago, amount), latest follow-up stage)
CUSTOMERS: dict[str, tuple[str | None, list[tuple[int, str]], str | None]] = {
    "k01": ("web", [], "contacted"),  # prospect, early
    "k02": ("web", [], "new_lead"),  # prospect, early
    "k03": ("web", [(0, "80")], "needs_analysis"),  # new, early
    "k04": ("web", [(0, "80")], "quoted"),  # new, high intent
    "k05": ("app", [(0, "80")], "negotiating"),  # new, high intent
    "k06": ("app", [(40, "80")], "won"),  # growing, won
    "k07": ("app", [(40, "80")], "lost"),  # growing, lost
    "k08": ("store", [(40, "1500"), (39, "1500"), (38, "1500"), (37, "1500")], None),  # mature, high value
    "k09": ("store", [(0, "80")], None),  # new
    "k10": (None, [(0, "80")], None),  # new, no profile: unknown channel
}
# The default catalog with a stricter high-value rule: k08 (6000 spent) falls to potential high value.
STRICTER = default_catalog_path().read_bytes().replace(b"spend(180d) > 5000 and", b"spend(180d) > 10000 and")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing (the test setup runs as root)."""
    if not CHROMIUM.exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "chromium"]
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:  # perhaps stale package lists
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600, check=False)
            done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900, check=False)
        if not CHROMIUM.exists():
            pytest.fail(f"the cockpit test needs Debian's chromium at {CHROMIUM}; `{' '.join(install)}` "
                        f"failed (exit {done.returncode}; it needs root):\n{done.stderr[-2000:]}")
    return CHROMIUM


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    if not BUILT.exists():
        pytest.fail(f"{BUILT.relative_to(ROOT)} is missing: run `make cockpit` (`make test` does)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop(services: Services, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Group]:
    """Two workers that know the customers above (and one malformed record, a dead letter)."""
    group = Group(services.kafka, tmp_path_factory.mktemp("cockpit"))
    try:
        first, _ = await group.start_ready("w1", "w2")
        records = [record for customer, plan in CUSTOMERS.items() for record in events(group, customer, *plan)]
        records.append((group.topic("orders"), b"k01", b'{"event_id": "broken", '))
        await produce(group.kafka, records)
        await eventually(lambda: all_read(first, len(records)), 60, what="every record read")
        yield group
    finally:
        group.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def page(shop: Group, browser: Browser) -> AsyncIterator[Page]:
    opened = await browser.new_page(viewport={"width": 1280, "height": 900})
    await opened.goto(f"http://127.0.0.1:{shop.workers[0].port}/")
    await opened.evaluate("window.notReloaded = true")
    yield opened
    assert await opened.evaluate("window.notReloaded === true"), "the page reloaded"
    await opened.close()


def events(group: Group, customer: str, channel: str | None, orders: list[tuple[int, str]],
           stage: str | None) -> list[tuple[str, bytes, bytes]]:
    now = time.time_ns() // 1000
    key = customer.encode()

    def event(topic: str, n: int, at: int, **fields: object) -> tuple[str, bytes, bytes]:
        value = {"event_id": f"{customer}-{topic}-{n}", "customer_id": customer, "occurred_at": format_timestamp(at)}
        return group.topic(topic), key, orjson.dumps({**value, **fields})

    found = [event("customers", 0, now, source_channel=channel, owner_rep="rep-07")] if channel else []
    found += [event("orders", n, now - days * DAY, order_id=f"{customer}-o{n}", amount=amount, status="paid")
              for n, (days, amount) in enumerate(orders)]
    if stage:
        found.append(event("followups", 0, now, rep_id="rep-07", stage=stage, kind="call"))
    return found


async def api(worker: Worker, path: str) -> dict[str, object]:
    status, body = await asyncio.to_thread(worker.get, path)
    assert status == 200, (path, status, body)
    return orjson.loads(body)  # type: ignore[no-any-return]


async def all_read(worker: Worker, count: int) -> bool:
    overview = await api(worker, "/overview")
    return overview["events_in"] == count and overview["lag"] == 0


async def showing(page: Page, language: str, section: str) -> None:
    """Choose the language and the page section as a person does: with the buttons and links."""
    await page.get_by_test_id(f"lang-{language}").click()
    await page.locator(f"nav a[data-page={section}]").click()
    assert await page.evaluate("window.notReloaded === true"), "the page reloaded"


async def test_the_overview_shows_what_the_api_counts(shop: Group, page: Page) -> None:
    await showing(page, "en", "overview")
    worker = shop.workers[1]  # the page's worker answers for both
    counts = {t["tag"]: t["customers"] for d in (await api(worker, "/tags"))["dimensions"]  # type: ignore[attr-defined]
              for t in d["tags"]}
    overview = await api(worker, "/overview")

    async def tag_counts() -> dict[str, int]:
        rows = await page.get_by_test_id("tag-counts").locator("tr").evaluate_all(
            "rows => rows.map(row => [row.dataset.testid, row.querySelector('.count').textContent])")
        return {name.removeprefix("count-"): int(value.replace(",", "")) for name, value in rows}

    await shows(tag_counts, lambda shown: shown == counts, "the tag counts of /tags")
    assert counts["mature"] == 1 and counts["high_value"] == 1
    assert await text(page, "kpi-customers") == str(overview["customers"]) == "10"
    assert await text(page, "kpi-dead-letters") == f"{overview['dead_letters']:.0f}" == "1"
    assert await text(page, "kpi-events-total") == f"{overview['events_in']:.0f} in all"
    assert await text(page, "kpi-lag") == "0"


async def test_the_funnels_pie_and_intent_bars_reflect_the_events_sent(page: Page) -> None:
    await showing(page, "en", "overview")
    lifecycle = {"Prospect: 2", "New customer: 5", "Growing customer: 2", "Mature customer: 1"}
    deals = {"Early stage: 3", "High intent: 2", "Deal won: 1", "Deal lost: 1"}
    channels = {"Web: 4 (40%)", "App: 3 (30%)", "Store: 2 (20%)", "Unknown: 1 (10%)"}
    await shows(chart(page, "chart-lifecycle"), lifecycle.issubset, "the lifecycle funnel")
    await shows(chart(page, "chart-deal"), deals.issubset, "the deal funnel")
    await shows(chart(page, "chart-channels"), channels.issubset, "the source-channel pie")
    await shows(chart(page, "chart-intent"), {"Early stage", "Deal lost", "3", "2", "1"}.issubset, "the intent bars")


async def test_the_customer_page_shows_history_explanation_facts_and_owner(shop: Group, page: Page) -> None:
    await showing(page, "en", "customer")
    await page.get_by_test_id("customer-id").fill("k08")
    await page.get_by_test_id("customer-show").click()
    history = await api(shop.workers[1], "/customers/k08/history")
    tags = {interval["tag"] for interval in history["intervals"]}  # type: ignore[attr-defined]
    assert {"mature", "high_value", "growing"} <= tags

    async def items() -> set[str]:
        return set(await page.get_by_test_id("history-item").evaluate_all("items => items.map(i => i.dataset.tag)"))

    await shows(items, lambda shown: shown == tags, "every interval of the history")
    mature = await page.locator("[data-testid=history-item][data-tag=mature]").inner_text()
    assert "Mature customer" in mature and "still held" in mature and "lifecycle.mature" in mature
    assert "rep-07" in await page.locator("#customer-summary").inner_text()
    assert "paid_orders_total" in await text(page, "customer-facts")
    assert "High-value customer" in await text(page, "customer-tags")

    status, _ = await asyncio.to_thread(shop.workers[0].get, "/customers/k08/explain")
    explanation = inner(page, "customer-explain")
    if status == 200:  # the explain endpoint is there (SPEC section 9): why k08 is high value
        await shows(explanation, lambda shown: "spend(180d) > 5000" in shown and "spend(180d) = 6000.00" in shown,
                    "the explanation of high_value")
    else:  # not merged yet: the page says so rather than fail
        await shows(explanation, lambda shown: f"answered {status}" in shown, "the note on explanations")


async def test_switching_language_changes_the_labels_without_a_reload(page: Page) -> None:
    await showing(page, "zh", "overview")
    await shows(inner(page, "count-high_value"), lambda shown: "高价值客户" in shown, "the catalog's Chinese names")
    assert await page.locator("nav a[data-page=overview]").inner_text() == "概览"
    await shows(chart(page, "chart-channels"), {"官网: 4 (40%)", "未知: 1 (10%)"}.issubset, "the pie in Chinese")
    await showing(page, "en", "overview")
    await shows(inner(page, "count-high_value"), lambda shown: "High-value customer" in shown, "back in English")


async def test_a_dry_run_of_a_stricter_catalog_shows_who_would_enter_and_leave(page: Page) -> None:
    assert b"spend(180d) > 10000" in STRICTER
    await showing(page, "en", "catalog")
    await page.get_by_test_id("candidate").fill(STRICTER.decode())
    await page.get_by_test_id("dry-run").click()
    await shows(inner(page, "dry-run-result"), lambda shown: "10 customers evaluated" in shown, "the dry run")
    assert "It would create 0 tasks" in await text(page, "dry-run-result")
    rows = await page.get_by_test_id("dry-run-result").locator("tbody tr").evaluate_all(
        "rows => rows.map(row => [...row.cells].map(cell => cell.textContent))")
    assert sorted(rows) == [  # tag, enter, leave, tasks, some entering, some leaving
        ["High-value customer high_value", "0", "1", "0", "", "k08"],
        ["Potential high-value customer potential_high_value", "1", "0", "0", "k08", ""],
    ]


async def test_the_page_follows_new_events_without_a_reload(shop: Group, page: Page) -> None:
    await showing(page, "en", "overview")
    await shows(inner(page, "kpi-customers"), lambda shown: shown == "10", "10 customers")
    newcomers = [r for c in ("k11", "k12") for r in events(shop, c, "mini_program", [(0, "80")], None)]
    await produce(shop.kafka, newcomers)
    await shows(inner(page, "kpi-customers"), lambda shown: shown == "12", "12 customers")
    await shows(chart(page, "chart-channels"), {"Mini program: 2 (16.67%)"}.issubset, "a new slice of the pie")
    await shows(chart(page, "chart-lifecycle"), {"New customer: 7"}.issubset, "a wider funnel")


# -- what the page shows --


def chart(page: Page, test_id: str) -> Callable[[], Awaitable[set[str]]]:
    """The texts of a chart (drawn as SVG): its labels, axis values and legend."""

    async def texts() -> set[str]:
        found = await page.get_by_test_id(test_id).evaluate(
            "chart => [...chart.querySelectorAll('text')].map(text => text.textContent)")
        return set(found)

    return texts


def inner(page: Page, test_id: str) -> Callable[[], Awaitable[str]]:
    return lambda: page.get_by_test_id(test_id).inner_text()


async def text(page: Page, test_id: str) -> str:
    return await page.get_by_test_id(test_id).inner_text()


async def shows(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], what: str, timeout: float = 20) -> T:
    """Until what the page shows (``probe``) is acceptable; else fail with what it showed last."""
    last: list[T] = []

    async def check() -> bool:
        last[:] = [await probe()]
        return accept(last[0])

    try:
        await eventually(check, timeout, what=what, interval=0.1)
    except AssertionError as failure:
        raise AssertionError(f"{failure}; the page showed {last[0] if last else None!r}") from None
    return last[0]
