"""The command line as a user runs it: replay, explain and catalog check (no servers needed)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def tagengine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


def lines(*records: dict[str, object] | str) -> str:
    return "\n".join(r if isinstance(r, str) else orjson.dumps(r).decode() for r in records) + "\n"


LOGIN = {"topic": "logins", "value": {"event_id": "e1", "customer_id": "c1", "occurred_at": "2026-01-01T00:00:00Z"}}


def test_replay_prints_changes_and_reports_bad_lines_with_their_numbers(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(lines(LOGIN, "not json", {"topic": "orders", "value": {"event_id": "x"}}))
    result = tagengine("replay", str(events), "--until", "2026-03-01T00:00:00Z", "--final")
    assert result.returncode == 0
    output = [orjson.loads(line) for line in result.stdout.splitlines()]
    changes = [o for o in output if "change_id" in o]
    assert [(c["dimension"], c["from"], c["to"], c["trigger"]) for c in changes] == [
        ("lifecycle", None, "prospect", "event"),
        ("activity", None, "active", "event"),
        ("activity", "active", "silent", "timer"),
    ]
    assert changes[2]["effective_at"] == "2026-01-31T00:00:00Z"
    assert output[-1] == {"customer_id": "c1", "final_tags": {"lifecycle": "prospect", "activity": "silent"}}
    assert f"{events}:2: malformed_line" in result.stderr
    assert f"{events}:3: missing_field" in result.stderr


def test_replay_takes_events_up_to_until_as_not_in_the_future(tmp_path: Path) -> None:
    ahead = {"topic": "logins", "value": {"event_id": "f", "customer_id": "c2", "occurred_at": "2099-01-01T00:00:00Z"}}
    events = tmp_path / "events.jsonl"
    events.write_text(lines(ahead))
    assert "in_future" in tagengine("replay", str(events)).stderr
    accepted = tagengine("replay", str(events), "--until", "2099-02-01T00:00:00Z")
    assert "in_future" not in accepted.stderr and '"to":"active"' in accepted.stdout


def test_catalog_check_exits_1_with_file_and_line(tmp_path: Path) -> None:
    catalog = tmp_path / "bad.yaml"
    catalog.write_text("catalog: bad\ndimensions:\n  d:\n    exclusive: true\n    name: {en: D}\n    tags:\n"
                       "      t:\n        name: {en: T}\n        definition: {en: T}\n        when: spend(90d) > \n")
    result = tagengine("catalog", "check", str(catalog))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{catalog}:10: in condition: unexpected end of the condition")
    assert tagengine("catalog", "check", str(ROOT / "rules" / "default_catalog.yaml")).returncode == 0


def order(customer: str, number: int, day: int, amount: str = "1000") -> dict[str, object]:
    value = {"event_id": f"{customer}-{number}", "customer_id": customer, "occurred_at": f"2026-01-{day:02d}T10:00:00Z",
             "order_id": f"{customer}-o{number}", "amount": amount, "status": "paid"}
    return {"topic": "orders", "value": value}


def looser_catalog(tmp_path: Path) -> Path:
    """The default catalog with high value from a spend of 3000 instead of 5000."""
    default = (ROOT / "rules" / "default_catalog.yaml").read_text()
    assert "spend(180d) > 5000" in default
    path = tmp_path / "looser.yaml"
    path.write_text(default.replace("spend(180d) > 5000", "spend(180d) > 3000"))
    return path


def test_replay_prints_the_tasks_after_the_change_that_created_them(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(lines(order("c1", 1, 1)))
    output = [orjson.loads(line) for line in tagengine("replay", str(events), "--tasks").stdout.splitlines()]
    welcome = next(i for i, o in enumerate(output) if o.get("to") == "new")
    assert output[welcome + 1]["change_id"] == output[welcome]["change_id"] and "task_id" in output[welcome + 1]


def test_strict_replay_exits_1_after_processing_every_line_when_one_was_invalid(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(lines("not json", LOGIN))
    strict = tagengine("replay", str(events), "--strict")
    assert strict.returncode == 1 and '"to":"active"' in strict.stdout
    assert "1 invalid input lines or records" in strict.stderr
    assert tagengine("replay", str(events)).returncode == 0


def test_a_backtest_against_the_current_catalog_differs_exactly_where_the_catalogs_differ(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    # c1 spends 4000 in 4 orders (high value only under the looser catalog); c2 spends 6000.
    c1 = [order("c1", n, n + 1) for n in range(4)]
    c2 = [order("c2", n, n + 1, "1500") for n in range(4)]
    events.write_text(lines(*c1, *c2))
    result = tagengine("replay", str(events), "--catalog", str(looser_catalog(tmp_path)), "--audience", "1d",
                       "--against", str(ROOT / "rules" / "default_catalog.yaml"), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert {r["bucket_end"] for r in rows} == {f"2026-01-{d:02d}T00:00:00Z" for d in (2, 3, 4, 5)}
    differing = [(r["bucket_end"], r["tag"], r["holders_diff"], r["entered_diff"], r["left_diff"], r["tasks_diff"])
                 for r in rows if any(r[f"{n}_diff"] for n in ("holders", "entered", "left", "tasks"))]
    assert differing == [
        ("2026-01-05T00:00:00Z", "high_value", 1, 1, 0, 1),  # c1 enters on its 4th order, with a VIP task
        ("2026-01-05T00:00:00Z", "potential_high_value", -1, 0, 1, 0),  # ... and leaves potential
    ]
    c2 = next(r for r in rows if r["bucket_end"] == "2026-01-05T00:00:00Z" and r["tag"] == "high_value")
    assert (c2["holders"], c2["against_holders"]) == (2, 1)


def test_a_backtest_prints_csv_with_every_tag_in_every_bucket(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(lines(order("c1", 1, 1), order("c1", 2, 3)))
    result = tagengine("replay", str(events), "--audience", "1d")
    header, *rows = result.stdout.splitlines()
    assert header == "bucket_end,tag,holders,entered,left,tasks"
    assert "2026-01-02T00:00:00Z,new,1,1,0,1" in rows
    assert len(rows) == 3 * sum(1 for line in (ROOT / "rules" / "default_catalog.yaml").read_text().splitlines()
                                if line.startswith("        name:"))
    assert tagengine("replay", str(events), "--against", "x.yaml").returncode == 2


def test_a_tool_without_a_broker_says_so_in_one_line_and_exits_1() -> None:
    for command in (["watch"], ["generate", "--duration", "1"]):
        result = subprocess.run([sys.executable, "-m", "streams.cli", *command], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, check=False,
                                env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
        assert result.returncode == 1, command
        assert result.stderr.count("\n") == 1 and "cannot reach Kafka at 127.0.0.1:1" in result.stderr
        assert "make services" in result.stderr


def test_a_worker_whose_web_port_is_taken_says_so_and_exits_1() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "streams.cli", "worker"], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, check=False,
                                env={**os.environ, "TAGENGINE_WEB_PORT": str(port)})
    assert result.returncode == 1 and f"port {port} is taken" in result.stderr and "Traceback" not in result.stderr


def test_the_local_services_file_is_found_and_an_explicit_setting_wins(tmp_path: Path) -> None:
    from streams.settings import LOCAL_SERVICES, Settings, local_services

    (tmp_path / LOCAL_SERVICES).parent.mkdir(parents=True)
    (tmp_path / LOCAL_SERVICES).write_text("# Written by scripts/services.py\n"
                                           "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:39092\n"
                                           "export REDIS_URL=redis://127.0.0.1:36379/0\n")
    found = local_services((tmp_path,))
    assert Settings.from_env(found).kafka_bootstrap_servers == "127.0.0.1:39092"
    assert Settings.from_env({**found, "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}).kafka_bootstrap_servers == "kafka:9092"
    assert local_services((tmp_path / "elsewhere",)) == {}


def test_numbers_out_of_range_are_usage_errors_and_the_version_is_printed() -> None:
    for arguments, words in ((["--customers", "0"], "must be at least 1"), (["--rate", "-5"], "must be at least 0"),
                             (["--customers", "ten"], "'ten' is not a whole number")):
        result = tagengine("generate", *arguments)
        assert result.returncode == 2 and words in result.stderr, arguments
    version = tagengine("--version")
    assert version.returncode == 0 and version.stdout.startswith("tagengine ")


def test_generate_writes_a_sample_history_that_replays(tmp_path: Path) -> None:
    sample = tmp_path / "sample.jsonl"
    assert tagengine("generate", "--out", str(sample), "--events", "500", "--customers", "50").returncode == 0
    assert len(sample.read_bytes().splitlines()) == 500
    replayed = tagengine("replay", str(sample), "--final")
    assert replayed.returncode == 0 and '"final_tags"' in replayed.stdout


def order_line(n: int, at: str, amount: str = "1500") -> dict[str, object]:
    return {"topic": "orders", "value": {"event_id": f"o{n}", "customer_id": "c1", "occurred_at": at,
                                         "order_id": f"order{n}", "amount": amount, "status": "paid"}}


FOUR_ORDERS = [order_line(n, f"2026-01-0{n + 1}T10:00:00Z") for n in range(4)]


def test_explain_replays_the_file_and_tells_why_each_tag_is_held_or_not(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(lines(*FOUR_ORDERS))
    result = tagengine("explain", str(events), "c1")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("customer c1 at 2026-01-04T10:00:00Z (catalog default ")
    assert "+ high_value — High-value customer: held since 2026-01-04T10:00:00Z" in text
    assert "      spend(180d) = 6000.00\n      spend(180d) > 5000 = true\n      paid_orders(180d) = 4\n" in text
    assert "- potential_high_value — Potential high-value customer: not held: its condition holds, " \
           "but high_value comes first" in text
    assert "- prospect — Prospect: not held: fails paid_orders_total == 0" in text


def test_explain_at_a_moment_leaves_later_events_out_and_fires_deadlines_up_to_it(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(lines(*FOUR_ORDERS, order_line(9, "2026-03-01T00:00:00Z", "10")))
    result = tagengine("explain", str(events), "c1", "--at", "2026-02-10T10:00:00Z", "--json", "--lang", "zh")
    assert result.returncode == 0, result.stderr
    document = orjson.loads(result.stdout)
    assert document["at"] == "2026-02-10T10:00:00Z" and document["language"] == "zh"
    tags = {t["tag"]: t for d in document["dimensions"] for t in d["tags"]}
    assert tags["silent"]["held"] and tags["silent"]["since"] == "2026-02-03T10:00:00Z"  # 30 days after
    assert tags["silent"]["values"]["age(last_activity)"] == "37d"
    assert tags["high_value"]["values"]["paid_orders(180d)"] == "4"  # the order of March is left out
    assert tags["mature"]["name"] == "成熟客户"


def test_explain_errors_are_one_line_with_a_non_zero_exit(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(lines(*FOUR_ORDERS))
    missing = tagengine("explain", str(tmp_path / "missing.jsonl"), "c1")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("tagengine explain: cannot read the events: ")
    unknown = tagengine("explain", str(events), "nobody")
    assert unknown.returncode == 1
    assert unknown.stderr == f"tagengine explain: unknown customer 'nobody': no valid event of it in {events}\n"
    language = tagengine("explain", str(events), "c1", "--lang", "fr")
    assert language.returncode == 2
    assert language.stderr == "tagengine explain: unknown language 'fr': the catalog has en, zh\n"


def test_every_option_of_every_command_has_help_text() -> None:
    import argparse

    from streams.cli import _parser

    def walk(parser: argparse.ArgumentParser, path: str) -> list[str]:
        missing = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    missing += walk(sub, f"{path} {name}")
            elif not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
        return missing

    assert walk(_parser(), "tagengine") == []


def test_a_dry_run_without_an_engine_says_so_in_one_line_and_exits_1() -> None:
    result = tagengine("catalog", "dry-run", str(ROOT / "rules" / "default_catalog.yaml"), "--url", "http://127.0.0.1:1")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("tagengine: no engine answered at http://127.0.0.1:1/catalog/dry-run: ")


def test_catalog_facts_lists_every_fact_window_and_function_with_its_type() -> None:
    from rules.facts import FACTS, FUNCTIONS, WINDOWS

    text = tagengine("catalog", "facts")
    assert text.returncode == 0
    assert "  days_to_birthday " in text.stdout and "[changed by profile updates, local midnight]" in text.stdout
    assert "  logins(D[, channel]) " in text.stdout and "  weekday(t) " in text.stdout
    listed = orjson.loads(tagengine("catalog", "facts", "--json").stdout)
    names = {word["written"].split("(")[0] for word in listed}
    assert names == {*FACTS, *WINDOWS, *FUNCTIONS}
    spend = next(word for word in listed if word["written"] == "spend(D)")
    assert spend == {"kind": "window", "written": "spend(D)", "type": "number",
                     "doc": WINDOWS["spend"].doc, "changed_by": ["orders", "time"]}
