"""``tagengine``: the one command line of the engine (SPEC section 8)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, cast

import orjson

from rules.catalog import Catalog, CatalogError, load_catalog, load_default_catalog, parse_catalog
from rules.engine import Result
from rules.replay import Replay
from state.customer import CustomerState
from state.events import TOPICS, InvalidEvent, parse_event
from state.times import parse_timestamp, wall_clock
from streams.messages import change_message, dumps
from streams.settings import Settings, SettingsError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except SettingsError as exc:
        print(f"tagengine: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tagengine", description="Real-time customer tag engine")
    commands = parser.add_subparsers(metavar="COMMAND")

    worker = commands.add_parser("worker", help="run a Faust worker (configured by the environment)")
    worker.add_argument("--loglevel", default="info")
    worker.set_defaults(run=_worker)

    replay = commands.add_parser("replay", help="evaluate the catalog offline, in event time")
    replay.add_argument("events", type=Path, help="JSON lines: {\"topic\": ..., \"value\": {...}}")
    replay.add_argument("--catalog", type=Path, help="catalog file (default: TAGENGINE_CATALOG or the default)")
    replay.add_argument("--until", help="fire deadlines up to this time at the end (ISO-8601); events up to "
                        "it are not 'in the future' even if the wall clock has not reached it")
    replay.add_argument("--final", action="store_true", help="then print each customer's final tags")
    replay.set_defaults(run=_replay)

    catalog = commands.add_parser("catalog", help="catalog tools").add_subparsers(metavar="ACTION")
    check = catalog.add_parser("check", help="validate a catalog file")
    check.add_argument("file", type=Path)
    check.set_defaults(run=_catalog_check)
    dry = catalog.add_parser("dry-run", help="per tag, how many customers a catalog would move (running engine)")
    dry.add_argument("file", type=Path)
    dry.add_argument("--url", default=None, help="a worker's URL (default: http://localhost:$TAGENGINE_WEB_PORT)")
    dry.set_defaults(run=_catalog_dry_run)

    generate = commands.add_parser("generate", help="produce demo / load events to Kafka")
    generate.add_argument("--customers", type=int, default=1000)
    generate.add_argument("--rate", type=float, default=50.0, help="events per second (0: as fast as possible)")
    generate.add_argument("--duration", type=float, default=0, help="seconds (0: until interrupted)")
    generate.add_argument("--history-days", type=float, default=0, help="back-date events up to this many days")
    generate.set_defaults(run=_generate)

    sync = commands.add_parser("redis-sync", help="rebuild the Redis projection from the engine's state")
    sync.add_argument("--delete-missing", action="store_true",
                      help="also delete customers Redis has but the state has not (stop the workers first)")
    sync.set_defaults(run=_redis_sync)

    watch = commands.add_parser("watch", help="print tag changes and tasks as they are published")
    watch.add_argument("--from-beginning", action="store_true")
    watch.set_defaults(run=_watch)
    return parser


# -- worker --


def _worker(args: argparse.Namespace) -> int:
    import faust

    from connectors.catalog_feed import latest_catalog
    from connectors.kafka_admin import CATALOG, ensure_topics
    from streams.app import Engine
    from streams.kafka_security import kafka_options

    settings = Settings.from_env()
    catalog = _catalog(settings.catalog_path)
    if catalog is None:
        return 1
    options = kafka_options(settings)
    created = asyncio.run(
        ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix, settings.partitions, **options)
    )
    if created:
        print(f"created topics: {', '.join(created)}", file=sys.stderr)
    published = asyncio.run(latest_catalog(settings.kafka_bootstrap_servers, settings.topic(CATALOG), **options))
    if published is not None:
        try:
            current = parse_catalog(published, "catalog topic")
        except CatalogError as exc:
            print(f"tagengine: ignoring the catalog in topic {settings.topic(CATALOG)}: {exc}", file=sys.stderr)
        else:
            if current.version != catalog.version:
                print(f"tagengine: using catalog {current.version} put through the API "
                      f"(not {catalog.version} named by the environment)", file=sys.stderr)
            catalog = current
    engine = Engine(settings, catalog)
    print(
        f"tagengine worker: catalog {catalog.name} ({catalog.version}), "
        f"{settings.partitions} partitions, web on :{settings.web_port}",
        file=sys.stderr,
    )
    worker = faust.Worker(engine.app, loglevel=args.loglevel)
    # Faust's terminal spinner puts the root logger at DEBUG (to spin on every record) whenever the
    # level is WARNING or above: every debug line of aiokafka then gets formatted, a tenth of the CPU.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


def _catalog(path: Path | None) -> Catalog | None:
    try:
        return load_catalog(path) if path else load_default_catalog()
    except CatalogError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None
    except OSError as exc:
        print(f"tagengine: cannot read catalog: {exc}", file=sys.stderr)
        return None


# -- catalog check --


def _catalog_check(args: argparse.Namespace) -> int:
    catalog = _catalog(args.file)
    if catalog is None:
        return 1
    print(f"{args.file}: ok, catalog {catalog.name!r} version {catalog.version}: "
          f"{len(catalog.dimensions)} dimensions, {len(catalog.tags)} tags")
    return 0


def _catalog_dry_run(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    if _catalog(args.file) is None:
        return 1
    url = (args.url or f"http://localhost:{Settings.from_env().web_port}").rstrip("/") + "/catalog/dry-run"
    request = urllib.request.Request(url, data=args.file.read_bytes(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            answer = orjson.loads(response.read())
    except (urllib.error.URLError, OSError) as exc:
        print(f"tagengine: no engine answered at {url}: {exc}", file=sys.stderr)
        return 1
    print(f"catalog {answer['version']} against {answer['customers']} customers:")
    print(f"{'tag':<28}{'enter':>10}{'leave':>10}")
    for tag, moves in answer["tags"].items():
        print(f"{tag:<28}{moves['enter']:>10}{moves['leave']:>10}")
    return 0


# -- replay --


def _replay(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    catalog = _catalog(args.catalog or settings.catalog_path)
    if catalog is None:
        return 1
    until = None
    if args.until:
        try:
            until = parse_timestamp(args.until)
        except ValueError as exc:
            print(f"tagengine replay: --until: {exc}", file=sys.stderr)
            return 2
    try:
        source = args.events.open("rb")
    except OSError as exc:
        print(f"tagengine replay: {exc}", file=sys.stderr)
        return 1
    with source:
        run_replay(catalog, source, str(args.events), sys.stdout.buffer, sys.stderr, until, args.final)
    return 0


def run_replay(
    catalog: Catalog,
    lines: Iterable[bytes],
    name: str,
    out: IO[bytes],
    err: IO[str],
    until: int | None = None,
    final: bool = False,
) -> Replay:
    """Feed replay input lines through the engine in event time, printing changes as JSON lines."""
    replay = Replay(catalog)
    # "More than 5 minutes in the future" needs a receive time, which a file does not have: the
    # wall clock stands in for it, or --until when later (events up to the declared end are not
    # in the future of this replay).
    received = max(wall_clock(), until or 0)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            topic, raw = _replay_line(line)
            event = parse_event(topic, raw, received)
        except InvalidEvent as exc:
            err.write(f"{name}:{number}: {exc.reason}: {exc.message}\n")
            continue
        for result in replay.apply(event):
            _write_changes(out, result, replay.now or event.occurred_at)
            if result.rejected is not None:
                err.write(f"{name}:{number}: {result.rejected.reason}: {result.rejected.message}\n")
    if until is not None:
        for result in replay.advance(until):
            _write_changes(out, result, replay.now or until)
    if final:
        for customer_id, state in sorted(replay.customers.items()):
            out.write(dumps({"customer_id": customer_id, "final_tags": final_tags(catalog, state)}) + b"\n")
    return replay


def _write_changes(out: IO[bytes], result: Result, emitted_at: int) -> None:
    for change in result.changes:
        out.write(dumps(change_message(change, emitted_at)) + b"\n")


def final_tags(catalog: Catalog, state: CustomerState) -> dict[str, object]:
    """Tags per dimension: a name for exclusive dimensions, a sorted list for the others."""
    open_dimensions = {d.name for d in catalog.dimensions if not d.exclusive}
    tags: dict[str, object] = {}
    for tag, held in sorted(state.tags.items()):
        if held.dimension in open_dimensions:
            tags.setdefault(held.dimension, [])
            cast(list[str], tags[held.dimension]).append(tag)
        else:
            tags[held.dimension] = tag
    return tags


def _replay_line(line: bytes) -> tuple[str, bytes]:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("malformed_line", f"not a JSON line: {exc}") from None
    if not isinstance(record, dict) or "topic" not in record or "value" not in record:
        raise InvalidEvent("malformed_line", 'expected {"topic": ..., "value": {...}}')
    topic = record["topic"]
    if topic not in TOPICS:
        raise InvalidEvent("unknown_topic", f"unknown topic {topic!r} (expected one of {', '.join(TOPICS)})")
    value = record["value"]
    raw = value.encode() if isinstance(value, str) else orjson.dumps(value)
    return topic, raw


# -- generate / watch --


def _generate(args: argparse.Namespace) -> int:
    from connectors.generator import produce
    from streams.kafka_security import kafka_options

    settings = Settings.from_env()
    asyncio.run(
        produce(
            settings.kafka_bootstrap_servers,
            settings.topic_prefix,
            args.customers,
            args.rate,
            args.duration,
            args.history_days,
            **kafka_options(settings),
        )
    )
    return 0


def _redis_sync(args: argparse.Namespace) -> int:
    from connectors.changelog import changelog_topic, read_changelog
    from connectors.redis_projection import rebuild
    from streams.app import TABLE
    from streams.kafka_security import kafka_options

    settings = Settings.from_env()
    if settings.redis_url is None:
        print("tagengine redis-sync: REDIS_URL is 'none': there is no projection to rebuild", file=sys.stderr)
        return 2
    topic = changelog_topic(settings.app_id, TABLE)

    def report(read: int, total: int) -> None:
        print(f"\rread {read} of about {total} state records", end="", file=sys.stderr, flush=True)

    records = read_changelog(settings.kafka_bootstrap_servers, topic, report, **kafka_options(settings))
    try:
        count = asyncio.run(rebuild(settings.redis_url, records, delete_missing=args.delete_missing))
    except LookupError as exc:
        print(f"\ntagengine redis-sync: {exc}", file=sys.stderr)
        return 1
    print(f"\nwrote the tags of {count} customer states to Redis", file=sys.stderr)
    return 0


def _watch(args: argparse.Namespace) -> int:
    from connectors.watch import watch
    from streams.kafka_security import kafka_options

    settings = Settings.from_env()
    options = kafka_options(settings)
    asyncio.run(watch(settings.kafka_bootstrap_servers, settings.topic_prefix, args.from_beginning, **options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
