"""The worker's HTTP API (SPEC section 6): health, metrics, customers, tags, catalog changes.

Each customer lives on the worker owning its partition. A request for one customer is forwarded
to that worker; a question about all customers (tag counts, members, dry runs) is asked of every
worker of the group (``?local=1`` answers for one worker's partitions) and the answers combined.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
from faust.exceptions import SameNode
from faust.web import Request, Response, View

from rules.catalog import Catalog, CatalogError, parse_catalog
from rules.engine import decide_tags
from state.codec import decode_state
from state.customer import CustomerState
from state.times import format_timestamp, wall_clock

if TYPE_CHECKING:
    from streams.app import Engine

MAX_PAGE = 1000


class EngineView(View):
    """A view with the worker's engine at hand (``add_views`` gives each app its own subclass)."""

    engine: Engine


class Health(EngineView):
    async def get(self, request: Request) -> Response:
        body = self.engine.health()
        return self.json(body, status=200 if body["status"] == "ok" else 503)


class Metrics(EngineView):
    async def get(self, request: Request) -> Response:
        self.engine.update_gauges()
        return self.bytes(self.engine.metrics.render(), content_type="text/plain; version=0.0.4")


class Customer(EngineView):
    async def get(self, request: Request, customer_id: str) -> Response:
        engine = self.engine
        try:
            return await engine.app.router.route_req(engine.table.name, customer_id.encode(), engine.app.web, request)
        except SameNode:
            pass  # this worker owns the customer
        encoded = engine.table.get(customer_id.encode())
        if not isinstance(encoded, bytes):
            return self.json({"error": f"unknown customer {customer_id!r}"}, status=404)
        return self.json(customer_document(engine.catalog, decode_state(encoded), wall_clock()))


class Tags(EngineView):
    async def get(self, request: Request) -> Response:
        counts = _local_tag_counts(self.engine)
        if request.query.get("local"):
            return self.json({"counts": counts})
        total = Counter(counts)
        for peer in _peers(self.engine):
            total.update((await _ask(self.engine, "GET", peer + "/tags", ""))["counts"])
        language = request.query.get("lang", self.engine.catalog.language)
        return self.json(catalog_document(self.engine.catalog, dict(total), language))


class TagMembers(EngineView):
    async def get(self, request: Request, tag: str) -> Response:
        if tag not in self.engine.catalog.tags:
            return self.json({"error": f"unknown tag {tag!r}"}, status=404)
        try:
            limit = min(MAX_PAGE, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            return self.json({"error": "limit must be a whole number"}, status=400)
        cursor = request.query.get("cursor", "")
        # Ordered by customer id and resumed after the cursor: a customer who holds the tag
        # throughout the walk is returned exactly once, whatever else changes meanwhile.
        members = sorted(c for c in _local_members(self.engine, tag) if c > cursor)[: limit + 1]
        if not request.query.get("local"):
            for peer in _peers(self.engine):
                answer = await _ask(self.engine, "GET", f"{peer}/tags/{tag}/customers", request.query_string)
                members = sorted({*members, *answer["customers"]})[: limit + 1]
        page = members[:limit]
        return self.json({"tag": tag, "customers": page, "cursor": page[-1] if len(members) > limit else None})


class CatalogView(EngineView):
    async def get(self, request: Request) -> Response:
        return self.json({"name": self.engine.catalog.name, "version": self.engine.catalog.version})

    async def put(self, request: Request) -> Response:
        refused = _authorise(self.engine, request)
        if refused is not None:
            return self.json({"error": refused[1]}, status=refused[0])
        body = await request.read()
        try:
            catalog = parse_catalog(body, "request")
        except CatalogError as exc:
            return self.json({"error": "invalid catalog", "problems": [str(p) for p in exc.problems]}, status=422)
        await self.engine.publish_catalog(body)
        return self.json({"version": catalog.version, "status": "published; every worker switches to it"}, status=202)


class DryRun(EngineView):
    async def post(self, request: Request) -> Response:
        body = await request.read()
        try:
            catalog = parse_catalog(body, "request")
        except CatalogError as exc:
            return self.json({"error": "invalid catalog", "problems": [str(p) for p in exc.problems]}, status=422)
        local = dry_run(catalog, _local_states(self.engine), wall_clock())
        if request.query.get("local"):
            return self.json(local)
        for peer in _peers(self.engine):
            _merge_dry_run(local, await _ask(self.engine, "POST", f"{peer}/catalog/dry-run", "", body))
        return self.json({"version": catalog.version, **local})


ROUTES: tuple[tuple[str, type[EngineView]], ...] = (
    ("/health", Health),
    ("/metrics", Metrics),
    ("/customers/{customer_id}", Customer),
    ("/tags", Tags),
    ("/tags/{tag}/customers", TagMembers),
    ("/catalog", CatalogView),
    ("/catalog/dry-run", DryRun),
)


def add_views(engine: Engine) -> None:
    for path, view in ROUTES:
        engine.app.page(path)(type(view.__name__, (view,), {"engine": engine}))


# -- answers --


def customer_document(catalog: Catalog, state: CustomerState, now: int) -> dict[str, object]:
    """A customer as the HTTP API shows it: tags with since and rule, facts, owner."""
    _, ctx = decide_tags(catalog, state, now)
    dimensions = {dimension.name for dimension in catalog.dimensions}
    facts: dict[str, object] = {}
    for tag in catalog.tags.values():
        facts.update(tag.condition.reason(ctx))
    return {
        "customer_id": state.customer_id,
        "seq": state.seq,
        "owner_rep": state.owner_rep,
        "catalog_version": state.catalog_version,
        "tags": {
            tag: {
                "dimension": held.dimension,
                "since": format_timestamp(held.since),
                "rule_id": f"{held.dimension}.{tag}",
                "seq": held.seq,
            }
            for tag, held in sorted(state.tags.items())
        },
        "facts": {key: value for key, value in sorted(facts.items()) if key not in dimensions},
        "next_deadline": format_timestamp(state.next_deadline) if state.next_deadline else None,
    }


def catalog_document(catalog: Catalog, counts: dict[str, int], language: str) -> dict[str, object]:
    return {
        "catalog": catalog.name,
        "version": catalog.version,
        "dimensions": [
            {
                "name": dimension.name,
                "label": dimension.label.get(language, dimension.name),
                "exclusive": dimension.exclusive,
                "tags": [
                    {
                        "tag": tag.name,
                        "rule_id": tag.rule_id,
                        "label": tag.label.get(language, tag.name),
                        "definition": tag.definition.get(language, ""),
                        "customers": counts.get(tag.name, 0),
                    }
                    for tag in dimension.tags
                ],
            }
            for dimension in catalog.dimensions
        ],
    }


def dry_run(catalog: Catalog, states: Iterator[CustomerState], now: int) -> dict[str, Any]:
    """Per tag, how many customers would enter and leave it under ``catalog``; changes nothing."""
    enter: Counter[str] = Counter()
    leave: Counter[str] = Counter()
    customers = 0
    for state in states:
        customers += 1
        decided, _ = decide_tags(catalog, state, now)
        after: set[str] = set()
        for value in decided.values():
            if isinstance(value, str):
                after.add(value)
            elif isinstance(value, frozenset):
                after |= value
        before = set(state.tags)
        enter.update(after - before)
        leave.update(before - after)
    tags = sorted(set(enter) | set(leave))
    return {"customers": customers, "tags": {tag: {"enter": enter[tag], "leave": leave[tag]} for tag in tags}}


def _merge_dry_run(into: dict[str, Any], other: dict[str, Any]) -> None:
    into["customers"] += other.get("customers", 0)
    for tag, moves in other.get("tags", {}).items():
        mine = into["tags"].setdefault(tag, {"enter": 0, "leave": 0})
        mine["enter"] += moves["enter"]
        mine["leave"] += moves["leave"]


# -- local data and peers --


def _local_states(engine: Engine) -> Iterator[CustomerState]:
    for _, encoded in engine.table.items():
        yield decode_state(encoded)


def _local_tag_counts(engine: Engine) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for state in _local_states(engine):
        counts.update(state.tags.keys())
    return dict(counts)


def _local_members(engine: Engine, tag: str) -> Iterator[str]:
    needle = f'"{tag}":['.encode()  # the tag as a key of the encoded "t" map: no full decode
    for key, encoded in engine.table.items():
        if needle in encoded and tag in decode_state(encoded).tags:
            yield key.decode()


def _peers(engine: Engine) -> list[str]:
    """Web URLs of the other workers of the group, from the partition assignor."""
    own = str(engine.app.conf.canonical_url).rstrip("/")
    urls = engine.app.router.table_metadata(engine.table.name)
    return sorted(url.rstrip("/") for url in urls if url.rstrip("/") != own)


async def _ask(engine: Engine, method: str, url: str, query: str, body: bytes | None = None) -> Any:
    target = f"{url}?{query}&local=1" if query else f"{url}?local=1"
    async with engine.app.http_client.request(method, target, data=body) as response:
        return orjson.loads(await response.read())


def _authorise(engine: Engine, request: Request) -> tuple[int, str] | None:
    """None when the request carries the admin token; else (status, reason). Constant-time."""
    token = engine.settings.admin_token
    if not token:
        return 403, "catalog changes are disabled: TAGENGINE_ADMIN_TOKEN is not set"
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return 401, "missing or wrong bearer token"
    return None
