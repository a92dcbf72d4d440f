"""The command line as a user runs it: replay and catalog check (no servers needed)."""

from __future__ import annotations

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
