"""The worker's HTTP API (SPEC sections 6, 9, 10): health, metrics, customers, their history
and explanations, tags and their audiences over time, catalog changes.

Each customer lives on the worker owning its partition. A request for one customer is forwarded
to that worker; a question about all customers (tag counts, members, dry runs) is asked of every
worker of the group (``?local=1`` answers for one worker's partitions) and the answers combined.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import ClientError
from aiohttp.web import HTTPRequestEntityTooLarge
from faust.exceptions import SameNode
from faust.web import Request, Response, View
from faust.web.exceptions import ServiceUnavailable, ValidationError, WebError

from connectors.partitioning import partition_for
from rules.catalog import Catalog, CatalogError, parse_catalog
from rules.dry_run import DryRun, dry_run
from rules.engine import decide_tags
from rules.explain import UnknownLanguage, explain
from rules.explain import to_json as explanation_document
from state.audience import STEPS, Point, add_series
from state.codec import decode_state, decode_step, history_prefix
from state.customer import CustomerState
from state.history import Interval, fold, page
from state.times import DAY, format_timestamp, parse_timestamp, wall_clock

if TYPE_CHECKING:
    from streams.app import Engine

MAX_PAGE = 1000
MAX_POINTS = 10_000
DEFAULT_SPAN = {"1h": 7 * DAY, "1d": 90 * DAY}


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
        forwarded = await _at_owner(self.engine, customer_id, request)
        if forwarded is not None:
            return forwarded
        encoded = _read(self.engine, customer_id, customer_id.encode())
        if encoded is None:
            return self.json({"error": f"unknown customer {customer_id!r}"}, status=404)
        return self.json(customer_document(self.engine.catalog, decode_state(encoded), wall_clock()))


class CustomerHistory(EngineView):
    async def get(self, request: Request, customer_id: str) -> Response:
        forwarded = await _at_owner(self.engine, customer_id, request)
        if forwarded is not None:
            return forwarded
        try:
            limit = _limit(request)
            cursor = _cursor(request)
        except ValueError as error:
            return self.json({"error": str(error)}, status=400)
        if _read(self.engine, customer_id, customer_id.encode()) is None:
            return self.json({"error": f"unknown customer {customer_id!r}"}, status=404)
        steps = self.engine.table.prefixed(_home(self.engine, customer_id), history_prefix(customer_id))
        history = fold(decode_step(value) for _, value in steps)
        found, after = page(history, request.query.get("tag"), request.query.get("dimension"), cursor, limit)
        return self.json({
            "customer_id": customer_id,
            "intervals": [interval_document(customer_id, interval) for interval in found],
            "cursor": str(after) if after is not None else None,
        })


class CustomerExplanation(EngineView):
    """Why the customer holds each tag of the catalog or not, now (SPEC section 9)."""

    async def get(self, request: Request, customer_id: str) -> Response:
        engine = self.engine
        language = _language(engine, request)  # refused here rather than after a hop
        forwarded = await _at_owner(engine, customer_id, request)
        if forwarded is not None:
            return forwarded
        encoded = _read(engine, customer_id, customer_id.encode())
        if encoded is None:
            return self.json({"error": f"unknown customer {customer_id!r}"}, status=404)
        try:
            explanation = explain(engine.catalog, decode_state(encoded), wall_clock(), language)
        except UnknownLanguage as exc:  # the catalog changed since the check above
            return self.json({"error": str(exc)}, status=400)
        return self.json(explanation_document(explanation))


class Tags(EngineView):
    async def get(self, request: Request) -> Response:
        counts = _local_tag_counts(self.engine)
        if request.query.get("local"):
            return self.json({"counts": counts})
        language = _language(self.engine, request)
        total = Counter(counts)
        for peer in _peers(self.engine):
            total.update((await _ask(self.engine, "GET", peer + "/tags", ""))["counts"])
        return self.json(catalog_document(self.engine.catalog, dict(total), language))


class TagMembers(EngineView):
    async def get(self, request: Request, tag: str) -> Response:
        if tag not in self.engine.catalog.tags:
            return self.json({"error": f"unknown tag {tag!r}"}, status=404)
        try:
            limit = _limit(request)
        except ValueError as error:
            return self.json({"error": str(error)}, status=400)
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


class TagAudience(EngineView):
    async def get(self, request: Request, tag: str) -> Response:
        if tag not in self.engine.catalog.tags:
            return self.json({"error": f"unknown tag {tag!r}"}, status=404)
        try:
            step_name, start, end = _audience_range(request)
        except ValueError as error:
            return self.json({"error": str(error)}, status=400)
        series: list[Point] = []
        for audience in list(self.engine.processor.audiences.values()):
            series = add_series(series, audience.series(tag, start, end, STEPS[step_name]))
        if request.query.get("local"):
            return self.json({"series": [[p.end, p.holders, p.entered, p.left] for p in series]})
        for peer in _peers(self.engine):
            answer = await _ask(self.engine, "GET", f"{peer}/tags/{tag}/audience", request.query_string)
            series = add_series(series, [Point(*point) for point in answer["series"]])
        return self.json({
            "tag": tag,
            "step": step_name,
            "from": format_timestamp(start),
            "to": format_timestamp(end),
            "points": [[format_timestamp(p.end), p.holders] for p in series],
            "entered": [[format_timestamp(p.end), p.entered] for p in series],
            "left": [[format_timestamp(p.end), p.left] for p in series],
        })


class Overview(EngineView):
    """What the cockpit's overview shows, for the whole group: customers, per source channel,
    holders per tag (with the catalog's names in ``lang``), and running totals of events, changes,
    tasks and dead letters and the consumer lag, from counters (no scan)."""

    async def get(self, request: Request) -> Response:
        local = _local_overview(self.engine)
        if request.query.get("local"):
            return self.json(local)
        language = _language(self.engine, request)
        for peer in _peers(self.engine):
            _add_overview(local, await _ask(self.engine, "GET", peer + "/overview", ""))
        catalog = catalog_document(self.engine.catalog, local.pop("counts"), language)
        return self.json({**local, "catalog": catalog, "as_of": format_timestamp(wall_clock())})


class CatalogView(EngineView):
    async def get(self, request: Request) -> Response:
        return self.json({"name": self.engine.catalog.name, "version": self.engine.catalog.version})

    async def put(self, request: Request) -> Response:
        refused = _authorise(self.engine, request)
        if refused is not None:
            return self.json({"error": refused[1]}, status=refused[0])
        body = await _body(request)
        try:
            catalog = parse_catalog(body, "request")
        except CatalogError as exc:
            return self.json({"error": "invalid catalog", "problems": [str(p) for p in exc.problems]}, status=422)
        # What the switch will do, said before it is done (the dry run of the same catalog).
        effect = await _group_dry_run(self.engine, catalog, body)
        await self.engine.publish_catalog(body)
        return self.json({"version": catalog.version, "status": "published; every worker switches to it",
                          **effect.document()}, status=202)


class CatalogDryRun(EngineView):
    async def post(self, request: Request) -> Response:
        body = await _body(request)
        try:
            catalog = parse_catalog(body, "request")
        except CatalogError as exc:
            return self.json({"error": "invalid catalog", "problems": [str(p) for p in exc.problems]}, status=422)
        if request.query.get("local"):
            return self.json(dry_run(catalog, self.engine.catalog, _local_states(self.engine), wall_clock()).document())
        effect = await _group_dry_run(self.engine, catalog, body)
        return self.json({"version": catalog.version, **effect.document()})


ROUTES: tuple[tuple[str, type[EngineView]], ...] = (
    ("/health", Health),
    ("/metrics", Metrics),
    ("/customers/{customer_id}", Customer),
    ("/customers/{customer_id}/history", CustomerHistory),
    ("/customers/{customer_id}/explain", CustomerExplanation),
    ("/tags", Tags),
    ("/tags/{tag}/customers", TagMembers),
    ("/tags/{tag}/audience", TagAudience),
    ("/overview", Overview),
    ("/catalog", CatalogView),
    ("/catalog/dry-run", CatalogDryRun),
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


def interval_document(customer_id: str, interval: Interval) -> dict[str, object]:
    """One interval of a customer's history, as SPEC section 9 shows it."""

    def edge(edge: Any) -> dict[str, object] | None:
        if edge is None:
            return None
        return {"change_id": f"{customer_id}:{edge.seq}", "rule_id": edge.rule_id, "trigger": edge.trigger,
                "catalog_version": edge.catalog_version, "reason": edge.reason}

    left = interval.left
    return {
        "tag": interval.tag,
        "dimension": interval.dimension,
        "entered_at": format_timestamp(interval.entered.at),
        "left_at": format_timestamp(left.at) if left is not None else None,
        "entered": edge(interval.entered),
        "left": edge(left),
        "expired": interval.expired,
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


# -- local data and peers --


async def _group_dry_run(engine: Engine, catalog: Catalog, body: bytes) -> DryRun:
    effect = dry_run(catalog, engine.catalog, _local_states(engine), wall_clock())
    for peer in _peers(engine):
        effect.add(DryRun.from_document(await _ask(engine, "POST", f"{peer}/catalog/dry-run", "", body)))
    return effect


def _local_states(engine: Engine) -> Iterator[CustomerState]:
    for _, encoded in engine.table.customers(engine.owned):
        yield decode_state(encoded)


def _local_tag_counts(engine: Engine) -> dict[str, int]:
    """Holders per tag on this worker, from the counters each batch maintains: no scan."""
    counts: Counter[str] = Counter()
    for audience in list(engine.processor.audiences.values()):
        counts.update(audience.holders)
    return {tag: count for tag, count in counts.items() if count}


def _local_overview(engine: Engine) -> dict[str, Any]:
    channels: Counter[str] = Counter()
    for census in list(engine.processor.censuses.values()):
        channels.update(census.channels)
    return {
        "customers": engine.processor.customer_count(),
        "channels": {channel: count for channel, count in channels.items() if count},
        "counts": _local_tag_counts(engine),
        "lag": sum(engine.lag().values()),
        **engine.metrics.totals(),
    }


def _add_overview(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict):
            into[key] = dict(Counter(into.get(key, {})) + Counter(value))
        else:
            into[key] = into.get(key, 0) + value


def _local_members(engine: Engine, tag: str) -> Iterator[str]:
    needle = f'"{tag}":['.encode()  # the tag as a key of the encoded "t" map: no full decode
    for key, encoded in engine.table.customers(engine.owned):
        if needle in encoded and tag in decode_state(encoded).tags:
            yield key.decode()


def _home(engine: Engine, customer_id: str) -> int:
    """The partition holding a customer's state and everything kept about it."""
    return partition_for(customer_id.encode(), engine.settings.partitions)


def _read(engine: Engine, customer_id: str, key: bytes) -> bytes | None:
    """A table entry of a customer's partition, the writes of batches still committing included."""
    return engine.table.read(_home(engine, customer_id), key)


async def _at_owner(engine: Engine, customer_id: str, request: Request) -> Response | None:
    """The owning worker's answer, or None when this worker owns the customer."""
    try:
        response: Response = await engine.app.router.route_req(
            engine.table.name, customer_id.encode(), engine.app.web, request)
        return response
    except SameNode:
        return None
    except (ClientError, OSError) as error:
        raise _unavailable(error) from error


def _cursor(request: Request) -> int | None:
    text = request.query.get("cursor", "")
    if text and not text.isdigit():
        raise ValueError(f"cursor must be the cursor of a previous answer, not {text!r}")
    return int(text) if text else None


def _language(engine: Engine, request: Request) -> str:
    """The ``lang`` asked for (default: the catalog's first); 400 for one the catalog lacks."""
    language = request.query.get("lang") or engine.catalog.language
    if language not in engine.catalog.languages:
        raise ValidationError(str(UnknownLanguage(language, engine.catalog)))
    return language


class TooLarge(WebError):
    code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


async def _body(request: Request) -> bytes:
    """The request's body; 413 with a JSON error beyond the web server's limit (1 MiB)."""
    try:
        body: bytes = await request.read()
    except HTTPRequestEntityTooLarge as error:
        raise TooLarge(f"the request body is over the web server's limit of 1 MiB ({error.text}); a catalog "
                       "is far smaller: is this the right file?") from error
    return body


def _limit(request: Request) -> int:
    text = request.query.get("limit", "100")
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_PAGE}, not {text!r}")
    return int(text)


def _audience_range(request: Request) -> tuple[str, int, int]:
    """(step name, start, end) of an audience request, with defaults; ValueError when invalid."""
    step = request.query.get("step", "1d")
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(STEPS)}, not {step!r}")
    end = parse_timestamp(request.query["to"]) if request.query.get("to") else wall_clock()
    start = parse_timestamp(request.query["from"]) if request.query.get("from") else end - DEFAULT_SPAN[step]
    if start >= end:
        raise ValueError("from must be before to")
    if (end - start) // STEPS[step] > MAX_POINTS:
        raise ValueError(f"at most {MAX_POINTS} points: choose a shorter range or a longer step")
    return step, start, end


def _peers(engine: Engine) -> list[str]:
    """Web URLs of the other workers of the group, from the partition assignor."""
    own = str(engine.app.conf.canonical_url).rstrip("/")
    urls = engine.app.router.table_metadata(engine.table.name)
    return sorted(url.rstrip("/") for url in urls if url.rstrip("/") != own)


async def _ask(engine: Engine, method: str, url: str, query: str, body: bytes | None = None) -> Any:
    target = f"{url}?{query}&local=1" if query else f"{url}?local=1"
    try:
        async with engine.app.http_client.request(method, target, data=body) as response:
            return orjson.loads(await response.read())
    except (ClientError, OSError) as error:
        raise _unavailable(error) from error


def _unavailable(error: Exception) -> ServiceUnavailable:
    """503 when the worker owning some of the partitions does not answer: it is gone and the
    group has not moved its partitions yet (within the session timeout), or it is restarting."""
    return ServiceUnavailable(f"a worker of the group does not answer ({error}); try again in a few seconds")


def _authorise(engine: Engine, request: Request) -> tuple[int, str] | None:
    """None when the request carries the admin token; else (status, reason). Constant-time."""
    token = engine.settings.admin_token
    if not token:
        return 403, "catalog changes are disabled: TAGENGINE_ADMIN_TOKEN is not set"
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return 401, "missing or wrong bearer token"
    return None
