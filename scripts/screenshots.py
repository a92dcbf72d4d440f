"""Screenshots of the cockpit for the README: the overview in Chinese and a customer page in English,
taken from a running worker (``make run`` gives one with demo data after a minute or two).

    .venv/bin/python scripts/screenshots.py [--url http://127.0.0.1:6066] [--customer ID] [--out docs]

Debian's chromium (/usr/bin/chromium) through Playwright, as in the cockpit's browser test. Chinese
needs a CJK font (Debian: ``apt-get install fonts-wqy-microhei``); without one it shows as boxes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from playwright.async_api import Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 860}
LIMIT = 200_000  # bytes: the README's pictures stay small


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:6066")
    parser.add_argument("--customer", help="default: the first high-value customer, else the first active one")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    options = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"needs Debian's chromium at {CHROMIUM}: apt-get install -y chromium", file=sys.stderr)
        return 1
    if not _has_chinese_font():
        print("warning: no CJK font (apt-get install fonts-wqy-microhei): Chinese will show as boxes", file=sys.stderr)
    customer = options.customer or _some_customer(options.url)
    options.out.mkdir(parents=True, exist_ok=True)
    shots = asyncio.run(_take(options.url.rstrip("/"), customer, options.out))
    for path in shots:
        size = path.stat().st_size
        print(f"{path} ({size // 1024} KB){'  (larger than the README wants)' if size > LIMIT else ''}")
    return 0


def _has_chinese_font() -> bool:
    if shutil.which("fc-list") is None:
        return False
    listed = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False)
    return bool(listed.stdout.strip())


def _some_customer(url: str) -> str:
    for tag in ("high_value", "active"):
        with urllib.request.urlopen(f"{url}/tags/{tag}/customers?limit=1", timeout=30) as answer:
            found = json.load(answer)["customers"]
        if found:
            return str(found[0])
    raise SystemExit("no customer yet: let the demo generator run a little longer")


async def _take(url: str, customer: str, out: Path) -> list[Path]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = await browser.new_page(viewport=VIEWPORT)
        await page.goto(f"{url}/#/overview")
        await page.get_by_test_id("lang-zh").click()
        # Rates need two looks; the channel pie needs the first answer.
        await page.wait_for_function("document.getElementById('kpi-events').textContent !== '—'")
        await page.wait_for_function("document.querySelectorAll('#chart-channels text').length > 0")
        overview = await _shot(page, out / "cockpit-overview.png")
        await page.get_by_test_id("lang-en").click()
        await page.goto(f"{url}/#/customer/{customer}")
        await page.wait_for_selector("[data-testid=history-item]")
        details = await _shot(page, out / "cockpit-customer.png")
        await browser.close()
    return [overview, details]


async def _shot(page: Page, path: Path) -> Path:
    await page.mouse.move(0, VIEWPORT["height"] - 1)  # no hover highlight in the picture
    await page.wait_for_timeout(800)  # let the charts' 300 ms animations end: a picture, not a test
    await page.screenshot(path=str(path))
    return path


if __name__ == "__main__":
    sys.exit(main())
