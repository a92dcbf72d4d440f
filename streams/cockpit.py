"""The cockpit (SPEC section 11): the web page at ``/`` and its files at ``/cockpit/<file>``.

The page is static: HTML, JavaScript modules and CSS from ``cockpit/`` in the source tree, and
Apache ECharts, which ``make cockpit`` installs from the npm registry and copies into
``cockpit/build/``. In the browser it reads the group-wide JSON endpoints (``streams/web.py``), so
any worker serves it for all customers, and it needs no network beyond this worker.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from faust.web import Request, Response, View

if TYPE_CHECKING:
    from streams.app import Engine

BUILT = ("echarts.min.js",)  # what ``make cockpit`` puts into build/
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# One plain file name: no folders, no dot files, so nothing outside the folder (package.json,
# node_modules) can be asked for.
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*\.(?:html|js|css|svg)")

MISSING_BUILD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tagengine cockpit: not built</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>The cockpit is not built</h1>
<p>This worker runs, but the cockpit's assets are missing ({missing} in {folder}).</p>
<p>Build them once with <code>make cockpit</code> (it installs Apache ECharts from the npm
registry), then reload this page. 驾驶舱尚未构建：请先运行 <code>make cockpit</code>。</p>
</body></html>
"""


@dataclass(frozen=True, slots=True)
class Asset:
    path: Path
    content_type: str


class Assets:
    """The cockpit's files: sources in ``folder``, built files in ``folder/build``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find(self, name: str) -> Asset | None:
        if not _NAME.fullmatch(name) or ".." in name:
            return None
        place = self.folder / "build" if name in BUILT else self.folder
        path = place / name
        if not path.is_file():
            return None
        return Asset(path, CONTENT_TYPES[path.suffix])

    def missing(self) -> list[str]:
        """The files without which the page cannot work, that are not there."""
        needed = ["index.html", *BUILT]
        return [name for name in needed if self.find(name) is None]


def default_folder() -> Path:
    """``cockpit/`` next to the packages: the source tree, or an editable install of it."""
    return Path(__file__).resolve().parents[1] / "cockpit"


class CockpitView(View):
    assets: Assets

    async def send(self, asset: Asset) -> Response:
        body = await asyncio.to_thread(asset.path.read_bytes)
        # no-cache: the browser asks again each time (cheap on localhost), so a rebuilt or
        # upgraded cockpit is never mixed with stale files.
        headers = {"Content-Type": asset.content_type, "Cache-Control": "no-cache"}
        return self.bytes(body, headers=headers)


class Page(CockpitView):
    async def get(self, request: Request) -> Response:
        missing = self.assets.missing()
        if missing:
            text = MISSING_BUILD.format(missing=", ".join(missing), folder=self.assets.folder)
            return self.html(text, status=503)
        return await self.send(Asset(self.assets.folder / "index.html", CONTENT_TYPES[".html"]))


class File(CockpitView):
    async def get(self, request: Request, name: str) -> Response:
        asset = self.assets.find(name)
        if asset is None:
            hint = " (run make cockpit)" if name in BUILT else ""
            return self.text(f"no cockpit file {name!r}{hint}\n", status=404)
        return await self.send(asset)


def add_cockpit(engine: Engine) -> None:
    """Serve the cockpit from this worker's web port. Registered before Faust's own blueprints,
    so ``/`` is the page rather than Faust's ``{"status": "OK"}`` index."""
    assets = Assets(engine.settings.cockpit_dir or default_folder())
    for path, view in (("/", Page), ("/cockpit/{name}", File)):
        engine.app.page(path)(type(view.__name__, (view,), {"assets": assets}))
