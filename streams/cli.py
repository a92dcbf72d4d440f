"""``tagengine``: the one command line of the engine (SPEC section 8)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import orjson
from aiokafka.errors import KafkaConnectionError
from redis.exceptions import ConnectionError as RedisConnectionError

from rules.backtest import Backtest, Row, compare
from rules.catalog import Catalog, CatalogError, load_catalog, load_default_catalog, parse_catalog
from rules.engine import Result
from rules.explain import UnknownLanguage, explain, to_text
from rules.explain import to_json as explanation_document
from rules.replay import Replay
from state.audience import STEPS
from state.customer import CustomerState
from state.events import TOPICS, InvalidEvent, parse_event
from state.times import DAY, format_timestamp, parse_timestamp, wall_clock
from streams import gc_policy
from streams.messages import change_message, dumps, task_message
from streams.settings import Settings, SettingsError

WATCHED = ("tag-changes", "tasks", "dead-letters")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    if args.run is not _worker:
        # A tool's connection errors end it with one line (below), not aiokafka's retries' logs.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return int(args.run(args) or 0)
    except SettingsError as exc:
        print(f"tagengine: configuration error: {exc}", file=sys.stderr)
        return 2
    except KafkaConnectionError as exc:
        print(f"tagengine: cannot reach Kafka at {Settings.from_env().kafka_bootstrap_servers} ({exc}); start the "
              "local services with `make services`, or set KAFKA_BOOTSTRAP_SERVERS", file=sys.stderr)
        return 1
    except RedisConnectionError as exc:
        print(f"tagengine: cannot reach Redis at {Settings.from_env().redis_url} ({exc}); start the local services "
              "with `make services`, or set REDIS_URL", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `tagengine replay ... | head`: the reader has all it wanted
        sys.stderr.close()  # nothing more can be said, and Python would complain at exit
        return 0
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tagengine", description="Real-time customer tag engine")
    parser.add_argument("--version", action="version", version=f"tagengine {_version()}")
    commands = parser.add_subparsers(metavar="COMMAND")

    worker = commands.add_parser("worker", help="run a Faust worker (configured by the environment)")
    worker.add_argument("--loglevel", default="info", choices=("debug", "info", "warning", "error"),
                        help="how much the worker logs (default info)")
    worker.set_defaults(run=_worker)

    replay = commands.add_parser("replay", help="evaluate the catalog offline, in event time")
    replay.add_argument("events", type=Path, help="JSON lines: {\"topic\": ..., \"value\": {...}}")
    replay.add_argument("--catalog", type=Path, help="catalog file (default: TAGENGINE_CATALOG or the default)")
    replay.add_argument("--until", type=_timestamp,
                        help="fire deadlines up to this time at the end (ISO-8601); events up to it are not "
                        "'in the future' even if the wall clock has not reached it")
    replay.add_argument("--final", action="store_true", help="then print each customer's final tags")
    replay.add_argument("--tasks", action="store_true", help="print the tasks each change creates after it")
    replay.add_argument("--strict", action="store_true",
                        help="exit 1 when any input line or record was invalid (after processing them all)")
    replay.add_argument("--audience", choices=list(STEPS), metavar="STEP",
                        help="backtest: instead of the changes, per bucket of STEP (1h or 1d) and tag, print the "
                        "holders at the bucket end and the customers who entered and left and the tasks created")
    replay.add_argument("--against", type=Path, metavar="OLD",
                        help="with --audience: also replay under catalog OLD and print both side by side, "
                        "with the difference")
    replay.add_argument("--format", choices=("csv", "json"), default="csv",
                        help="with --audience: CSV (default) or JSON lines")
    replay.set_defaults(run=_replay)

    explain = commands.add_parser("explain", help="why a customer holds each tag or not, replaying a file")
    explain.add_argument("events", type=Path, help="JSON lines, as for replay")
    explain.add_argument("customer_id", help="the customer to explain")
    explain.add_argument("--at", type=_timestamp,
                         help="the moment to explain (ISO-8601): later events are left out, deadlines up to it "
                         "fire (default: the time of the latest event)")
    explain.add_argument("--catalog", type=Path, help="catalog file (default: TAGENGINE_CATALOG or the default)")
    explain.add_argument("--lang", help="language of names and definitions (default: the catalog's first)")
    explain.add_argument("--json", action="store_true", help="the document GET /customers/<id>/explain returns")
    explain.set_defaults(run=_explain)

    catalog = commands.add_parser("catalog", help="catalog tools").add_subparsers(metavar="ACTION")
    check = catalog.add_parser("check", help="validate a catalog file")
    check.add_argument("file", type=Path, help="the catalog (YAML)")
    check.set_defaults(run=_catalog_check)
    dry = catalog.add_parser("dry-run", help="per tag, how many customers a catalog would move (running engine)")
    dry.add_argument("file", type=Path, help="the candidate catalog (YAML)")
    dry.add_argument("--url", default=None, help="a worker's URL (default: http://localhost:$TAGENGINE_WEB_PORT)")
    dry.set_defaults(run=_catalog_dry_run)
    facts = catalog.add_parser("facts", help="the vocabulary of conditions: facts, window functions, functions")
    facts.add_argument("--json", action="store_true", help="a JSON list instead of text")
    facts.set_defaults(run=_catalog_facts)

    generate = commands.add_parser("generate", help="produce demo / load events to Kafka, or write a sample file")
    generate.add_argument("--customers", type=_at_least(1, int), default=1000, help="distinct customers (default 1000)")
    generate.add_argument("--rate", type=_at_least(0, float), default=50.0,
                          help="events per second (default 50; 0: as fast as possible)")
    generate.add_argument("--duration", type=_at_least(0, float), default=0, help="seconds (0: until interrupted)")
    generate.add_argument("--history-days", type=_at_least(0, float), default=0,
                          help="back-date events up to this many days (old, silent and late events appear)")
    generate.add_argument("--out", type=Path, metavar="FILE.jsonl",
                          help="write replay input lines to this file instead of Kafka (a sample history)")
    generate.add_argument("--events", type=_at_least(1, int), default=10_000,
                          help="with --out: how many events (default 10000, over the last week)")
    generate.set_defaults(run=_generate)

    sync = commands.add_parser("redis-sync", help="rebuild the Redis projection from the engine's state")
    sync.add_argument("--delete-missing", action="store_true",
                      help="also delete customers Redis has but the state has not (stop the workers first)")
    sync.set_defaults(run=_redis_sync)

    watch = commands.add_parser("watch", help="print tag changes, tasks and dead letters as they are published")
    watch.add_argument("--from-beginning", action="store_true", help="start from the oldest message kept")
    watch.add_argument("--json", action="store_true", help="print each message as a JSON line with its topic")
    watch.add_argument("--customer", help="only this customer's messages")
    watch.add_argument("--tag", help="only changes into or out of this tag, and the tasks they create")
    watch.add_argument("--topic", action="append", choices=WATCHED, help="only these topics (repeatable)")
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
    if not _port_free(settings.web_host, settings.web_port):
        print(f"tagengine worker: port {settings.web_port} is taken (another worker?); stop what uses it or set "
              "TAGENGINE_WEB_PORT to a free port", file=sys.stderr)
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
    gc_policy.tune()
    engine.app.timer(gc_policy.FULL_COLLECTION_EVERY, name="full-garbage-collection")(_collect_garbage)
    # Faust's terminal spinner puts the root logger at DEBUG (to spin on every record) whenever the
    # level is WARNING or above: every debug line of aiokafka then gets formatted, a tenth of the CPU.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


async def _collect_garbage() -> None:
    gc_policy.collect_fully()


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server will bind it
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _catalog_facts(args: argparse.Namespace) -> int:
    from rules.vocabulary import to_json, to_text, vocabulary

    words = vocabulary()
    if args.json:
        sys.stdout.write(orjson.dumps(to_json(words), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(to_text(words))
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
    print(f"{'tag':<28}{'enter':>8}{'leave':>8}{'tasks':>8}  sample of those entering")
    for tag, moves in answer["tags"].items():
        sample = ", ".join(moves["enter_sample"])
        print(f"{tag:<28}{moves['enter']:>8}{moves['leave']:>8}{moves['tasks']:>8}  {sample}")
    print(f"publishing it would create {answer['tasks']} tasks at once")
    return 0


# -- replay --


def _replay(args: argparse.Namespace) -> int:
    gc_policy.tune()  # holding every customer of the input, replay is the worker's case in small
    settings = Settings.from_env()
    if (args.against or args.format != "csv") and not args.audience:
        print("tagengine replay: --against and --format go with --audience", file=sys.stderr)
        return 2
    if args.audience and (args.final or args.tasks):
        print("tagengine replay: --audience prints buckets, not changes: drop --final/--tasks", file=sys.stderr)
        return 2
    catalog = _catalog(args.catalog or settings.catalog_path)
    against = _catalog(args.against) if args.against else None
    if catalog is None or (args.against and against is None):
        return 1
    until = args.until
    try:
        source = args.events.open("rb")
    except OSError as exc:
        print(f"tagengine replay: {exc}", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    with source:
        if args.audience:
            lines = source.readlines()  # read twice with --against
            invalid = _backtest(catalog, against, lines, str(args.events), STEPS[args.audience], args.format, until)
        else:
            run = run_replay(catalog, source, str(args.events), out, sys.stderr, until, args.final, args.tasks)
            invalid = run.invalid
    if invalid:
        print(f"tagengine replay: {invalid} invalid input lines or records (reported above)", file=sys.stderr)
    return 1 if args.strict and invalid else 0


@dataclass
class ReplayRun:
    """A replay of input lines: the engine's final state, and how many lines or records were invalid."""

    replay: Replay
    invalid: int


def replay_lines(
    catalog: Catalog,
    lines: Iterable[bytes],
    name: str,
    err: IO[str],
    on_result: Callable[[Result, int], None],
    until: int | None = None,
    skip_after: int | None = None,
) -> ReplayRun:
    """Feed replay input lines through the engine in event time; each result goes to
    ``on_result`` with the replay's clock. Invalid lines and records are reported on ``err``
    with their line numbers; progress too, every few seconds, when ``err`` is a terminal.
    Events that occurred after ``skip_after`` are left out: the customers as they were then."""
    replay = Replay(catalog)
    # "More than 5 minutes in the future" needs a receive time, which a file does not have: the
    # wall clock stands in for it, or --until when later (events up to the declared end are not
    # in the future of this replay).
    received = max(wall_clock(), until or 0)
    invalid = 0
    progress = _Progress(name, err)
    for number, line in enumerate(lines, start=1):
        progress.line(number)
        if not line.strip():
            continue
        try:
            topic, raw = _replay_line(line)
            event = parse_event(topic, raw, received)
        except InvalidEvent as exc:
            err.write(f"{name}:{number}: {exc.reason}: {exc.message}\n")
            invalid += 1
            continue
        if skip_after is not None and event.occurred_at > skip_after:
            continue
        for result in replay.apply(event):
            on_result(result, replay.now or event.occurred_at)
            if result.rejected is not None:
                err.write(f"{name}:{number}: {result.rejected.reason}: {result.rejected.message}\n")
                invalid += 1
    if until is not None:
        for result in replay.advance(until):
            on_result(result, replay.now or until)
    progress.done()
    return ReplayRun(replay, invalid)


def run_replay(
    catalog: Catalog,
    lines: Iterable[bytes],
    name: str,
    out: IO[bytes],
    err: IO[str],
    until: int | None = None,
    final: bool = False,
    tasks: bool = False,
) -> ReplayRun:
    """Replay input lines, printing changes (and with ``tasks`` the tasks after each change) as
    JSON lines in the format of their topics, then with ``final`` each customer's final tags."""

    def write(result: Result, emitted_at: int) -> None:
        for change in result.changes:
            out.write(dumps(change_message(change, emitted_at)) + b"\n")
            if tasks:
                for task in result.tasks:
                    if task.change_id == change.change_id:
                        out.write(dumps(task_message(task)) + b"\n")

    run = replay_lines(catalog, lines, name, err, write, until)
    if final:
        for customer_id, state in sorted(run.replay.customers.items()):
            out.write(dumps({"customer_id": customer_id, "final_tags": final_tags(catalog, state)}) + b"\n")
    return run


# -- explain --


def _explain(args: argparse.Namespace) -> int:
    catalog = _catalog(args.catalog or Settings.from_env().catalog_path)
    if catalog is None:
        return 1
    if args.lang is not None and args.lang not in catalog.languages:
        print(f"tagengine explain: {UnknownLanguage(args.lang, catalog)}", file=sys.stderr)
        return 2
    at = args.at
    try:
        source = args.events.open("rb")
    except OSError as exc:
        print(f"tagengine explain: cannot read the events: {exc}", file=sys.stderr)
        return 1
    # The same replay as ``tagengine replay``, its changes ignored: only the final state counts.
    with source:
        replay = replay_lines(catalog, source, str(args.events), sys.stderr, _ignore, until=at, skip_after=at).replay
    state = replay.customers.get(args.customer_id)
    if state is None or replay.now is None:
        print(f"tagengine explain: unknown customer {args.customer_id!r}: no valid event of it in {args.events}"
              + (f" up to {format_timestamp(at)}" if at is not None else ""), file=sys.stderr)
        return 1
    explanation = explain(catalog, state, at if at is not None else replay.now, args.lang)
    if args.json:
        sys.stdout.buffer.write(dumps(explanation_document(explanation)) + b"\n")
    else:
        sys.stdout.write(to_text(explanation))
    return 0


def _ignore(result: Result, emitted_at: int) -> None:
    """Changes of a replay that only its final states are wanted from."""


def _backtest(
    catalog: Catalog, against: Catalog | None, lines: list[bytes], name: str, step: int, form: str, until: int | None
) -> int:
    """Print a backtest (with ``against``, two side by side); returns how many lines were invalid."""
    new = Backtest(catalog)
    run = replay_lines(catalog, lines, name, sys.stderr, lambda result, _: new.add(result), until)
    old = Backtest(against) if against is not None else None
    if against is not None and old is not None:
        add_old = old.add
        # The same lines: their problems were reported once already.
        replay_lines(against, lines, name, io.StringIO(), lambda result, _: add_old(result), until)
    firsts = [b.first for b in (new, old) if b is not None and b.first is not None]
    if not firsts or run.replay.now is None:
        print("tagengine replay: no tag changes to backtest", file=sys.stderr)
        return run.invalid
    start, end = min(firsts), run.replay.now + 1
    rows = new.rows(start, end, step)
    if old is None:
        _write_rows(sys.stdout, form, [_row_fields(row) for row in rows])
    else:
        pairs = compare(rows, old.rows(start, end, step))
        _write_rows(sys.stdout, form, [_pair_fields(a, b) for a, b in pairs])
    return run.invalid


def _row_fields(row: Row) -> dict[str, object]:
    return {"bucket_end": format_timestamp(row.bucket_end), "tag": row.tag, "holders": row.holders,
            "entered": row.entered, "left": row.left, "tasks": row.tasks}


def _pair_fields(new: Row, old: Row) -> dict[str, object]:
    fields = _row_fields(new)
    for name in ("holders", "entered", "left", "tasks"):
        fields[f"against_{name}"] = getattr(old, name)
    for name in ("holders", "entered", "left", "tasks"):
        fields[f"{name}_diff"] = getattr(new, name) - getattr(old, name)
    return fields


def _write_rows(out: IO[str], form: str, rows: list[dict[str, object]]) -> None:
    if form == "json":
        for row in rows:
            out.write(orjson.dumps(row).decode() + "\n")
        return
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


class _Progress:
    """"read N lines (R lines/s)" on a terminal every 2 s, so a long replay shows it is moving."""

    def __init__(self, name: str, err: IO[str]) -> None:
        self.name, self.err = name, err
        self.shown = err.isatty()
        self.started = self.last = time.monotonic()
        self.count = 0

    def line(self, number: int) -> None:
        self.count = number
        if self.shown and number % 10_000 == 0 and time.monotonic() - self.last >= 2:
            self.last = time.monotonic()
            rate = number / (self.last - self.started)
            self.err.write(f"\r{self.name}: {number:,} lines ({rate:,.0f} lines/s)")
            self.err.flush()

    def done(self) -> None:
        if self.shown and self.last > self.started:
            self.err.write(f"\r{self.name}: {self.count:,} lines in {time.monotonic() - self.started:.1f} s\n")


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
    from connectors.generator import jsonl_lines, produce
    from streams.kafka_security import kafka_options

    if args.out is not None:
        spacing = 7 * DAY // args.events  # a week of history, ending now
        try:
            with args.out.open("wb") as out:
                for line in jsonl_lines(args.events, args.customers, start=wall_clock() - 7 * DAY, step=spacing):
                    out.write(line + b"\n")
        except OSError as exc:
            print(f"tagengine generate: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.events} events over {args.customers} customers to {args.out}", file=sys.stderr)
        return 0
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
        count = asyncio.run(rebuild(settings.redis_url, records, prefix=settings.app_id,
                                    delete_missing=args.delete_missing))
    except LookupError as exc:
        print(f"\ntagengine redis-sync: {exc}", file=sys.stderr)
        return 1
    print(f"\nwrote the tags of {count} customer states to Redis", file=sys.stderr)
    return 0


def _watch(args: argparse.Namespace) -> int:
    from connectors.watch import Filter, watch
    from streams.kafka_security import kafka_options

    settings = Settings.from_env()
    wanted = Filter(tuple(args.topic or WATCHED), args.customer, args.tag)
    asyncio.run(watch(settings.kafka_bootstrap_servers, settings.topic_prefix, wanted, args.from_beginning,
                      args.json, **kafka_options(settings)))
    return 0


def _timestamp(text: str) -> int:
    """An argparse type: an ISO-8601 time with an offset, or a clear usage error."""
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _at_least(minimum: float, kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` not below ``minimum``, or a clear usage error."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, not {text}")
        return value

    return parse


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tagengine")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
