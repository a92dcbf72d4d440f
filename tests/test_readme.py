"""The README's examples, executed (issue 11: "so they cannot drift").

Every block of README.md marked ``<!-- tested: tests/test_readme.py -->`` on the line before its
fence is run here (or, for the commands that need a running engine, by tests/test_newcomer.py
against the worker that `make run` started), in a temporary folder and with nothing exported:

- the worked example's catalog (``catalog: weekly``), checked, and the shell lines after it
  (``events.jsonl`` is a sample written by ``tagengine generate --out`` first);
- the sample error of a misspelt function, which must be exactly what ``catalog check`` prints;
- the validity periods' ``welcome`` tag, added to the worked example's dimension and checked;
- the analyst's session: ``generate --out``, the ``sed`` catalog, the check, the backtest, the
  ``grep``, and ``explain``; its ``curl`` lines and ``catalog dry-run`` run against a live worker.

A comment right after a command (no blank line between) is that command's output; other comments
are prose. Output is compared line by line, in order, with ``…`` or ``...`` standing for anything
and ``a ... b`` for the lines between a and b. Where the input is generated relative to the clock
(the analyst's session), numbers, durations, timestamps and versions stand for any such value: the
words and the shape of each line must still be what the README shows. Not executed: ``make run``,
``make test`` (the newcomer test runs what ``make run`` runs), and the HTTP API table of ``curl``
lines (its endpoints are tested one by one in tests/streams/test_api.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = "<!-- tested: tests/test_readme.py -->"
LIVE = ("curl ", "tagengine catalog dry-run")  # lines that need a running engine


@dataclass
class Block:
    line: int  # of the opening fence
    lang: str
    text: str
    marked: bool


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.command.startswith(LIVE)


def readme_blocks() -> list[Block]:
    found: list[Block] = []
    lines = README.read_text().splitlines()
    number = 0
    while number < len(lines):
        fence = lines[number]
        if fence.startswith("```"):
            end = lines.index("```", number + 1)
            before = next((line for line in reversed(lines[:number]) if line.strip()), "")
            found.append(Block(number + 1, fence[3:].strip(), "\n".join(lines[number + 1 : end]) + "\n",
                               before.strip() == MARK))
            number = end
        number += 1
    return found


def readme_block(containing: str) -> Block:
    """The one block holding ``containing``; it must carry the mark, so an editor knows it runs."""
    matching = [b for b in readme_blocks() if containing in b.text]
    assert len(matching) == 1, f"README.md: {len(matching)} blocks hold {containing!r}"
    assert matching[0].marked, f"README.md:{matching[0].line}: a tested block lacks {MARK}"
    return matching[0]


# What each test looks its block up by; test_every_marked_block_is_executed keeps the two in step.
WORKED_CATALOG = "catalog: weekly"
WORKED_COMMANDS = "catalog check weekly.yaml"
WORKED_ERROR = "paid_order(7d) >= 2"
VALIDITY = "valid_for: 7d"
ANALYST = "tagengine generate --out history.jsonl"
ANALYST_EXPLAIN = "tagengine explain history.jsonl"
WHILE_RUNNING = "curl localhost:6066/customers/c0000001"
USED = (WORKED_CATALOG, WORKED_COMMANDS, WORKED_ERROR, VALIDITY, ANALYST, ANALYST_EXPLAIN, WHILE_RUNNING)


def steps(block: Block) -> list[Step]:
    """Commands of a shell block, each with the output its comment lines show."""
    found: list[Step] = []
    current: Step | None = None
    for line in block.text.splitlines():
        if not line.strip():
            current = None
        elif line.startswith("#"):
            if current is not None:  # else prose
                current.expected.append(line[2:] if line.startswith("# ") else line[1:])
        else:
            current = Step(line)
            found.append(current)
    return found


_TOKENS = re.compile(
    r"(?P<elide>…|\.\.\.)|(?P<ts>\d{4}-\d\d-\d\dT[\d:.]+Z)|(?P<dur>\b\d+[dhms](?: \d+[dhms])*\b)"
    r"|(?P<hex>\b[0-9a-f]{16}\b)|(?P<num>-?\b\d+(?:\.\d+)?\b)"
)
_LOOSE = {"ts": r"\d{4}-\d\d-\d\dT[\d:.]+Z", "dur": r"\d+[dhms](?: \d+[dhms])*", "hex": r"[0-9a-f]{16}",
          "num": r"-?\d+(?:\.\d+)?"}


def pattern(expected: str, loose: bool) -> re.Pattern[str]:
    parts, at = [], 0
    for token in _TOKENS.finditer(expected):
        kind = token.lastgroup or ""
        if kind == "elide" or loose:
            parts.append(re.escape(expected[at : token.start()]))
            parts.append(".*" if kind == "elide" else _LOOSE[kind])
            at = token.end()
    parts.append(re.escape(expected[at:]))
    return re.compile("".join(parts))


def assert_shows(output: str, expected: list[str], loose: bool, what: str) -> None:
    """Each expected line matches a whole output line, in order (``a ... b``: a, lines, b)."""
    wanted = [part.strip() for line in expected for part in line.split(" ... ")]
    lines = [line.strip() for line in output.splitlines()]
    at = 0
    for line in wanted:
        regex = pattern(line, loose)
        while at < len(lines) and not regex.fullmatch(lines[at]):
            at += 1
        assert at < len(lines), f"{what}: the README shows {line!r}; the output was:\n{output}"
        at += 1


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A checkout as the README's commands expect it: ``rules/``, ``.venv/bin``."""
    (tmp_path / "rules").symlink_to(ROOT / "rules")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    return tmp_path


def shell(command: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """One line of the README in a terminal with nothing exported and the virtualenv on PATH."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith(("KAFKA_", "TAGENGINE_")) or k == "REDIS_URL")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if not (Path(sys.executable).parent / "tagengine").is_file():
        pytest.skip("no tagengine command next to this Python (run it from the project's .venv)")
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def run_steps(block: Block, folder: Path, loose: bool) -> list[Step]:
    """Run the block's offline commands in order; returns the live ones, not run."""
    live = []
    for step in steps(block):
        if step.live:
            live.append(step)
            continue
        result = shell(step.command, folder)
        assert result.returncode == 0, f"README.md:{block.line}: {step.command}\n{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        assert_shows(result.stdout, step.expected, loose, f"README.md:{block.line}: {step.command}")
    return live


def test_every_marked_block_is_executed() -> None:
    marked = {b.line for b in readme_blocks() if b.marked}
    used = {readme_block(key).line for key in USED}
    assert marked == used, f"README.md blocks marked but not executed (lines): {sorted(marked - used)}"


def test_the_worked_example_checks_replays_and_its_sample_error_is_what_check_prints(folder: Path) -> None:
    catalog = readme_block(WORKED_CATALOG).text
    (folder / "weekly.yaml").write_text(catalog)
    assert shell("tagengine generate --out events.jsonl --events 2000 --customers 100", folder).returncode == 0
    run_steps(readme_block(WORKED_COMMANDS), folder, loose=False)

    error = readme_block(WORKED_ERROR).text
    assert catalog.count("paid_orders(7d) >= 2") == 1
    (folder / "weekly.yaml").write_text(catalog.replace("paid_orders(7d) >= 2", "paid_order(7d) >= 2"))
    checked = shell(".venv/bin/tagengine catalog check weekly.yaml", folder)
    assert checked.returncode == 1
    assert checked.stderr == error


def test_the_worked_replay_prints_changes_then_final_tags(folder: Path) -> None:
    (folder / "weekly.yaml").write_text(readme_block(WORKED_CATALOG).text)
    assert shell("tagengine generate --out events.jsonl --events 1000 --customers 50", folder).returncode == 0
    replay = next(s for s in steps(readme_block(WORKED_COMMANDS)) if "replay" in s.command)
    result = shell(replay.command, folder)
    assert result.returncode == 0, result.stderr
    # Hot on a second order within 7 days; by --until (weeks later) every customer has cooled down.
    assert '"to":"hot","rule_id":"heat.hot","catalog_version":"' in result.stdout
    assert '"from":"hot","to":null,' in result.stdout and '"trigger":"timer"' in result.stdout
    assert result.stdout.endswith('{"customer_id":"c0000050","final_tags":{}}\n')


def test_a_validity_period_as_the_readme_writes_it_is_a_valid_tag(folder: Path) -> None:
    catalog = readme_block(WORKED_CATALOG).text
    welcome = readme_block(VALIDITY).text
    (folder / "welcome.yaml").write_text(catalog.replace("    tags:\n", "    tags:\n" + welcome, 1))
    result = shell("tagengine catalog check welcome.yaml", folder)
    assert result.returncode == 0, result.stderr
    assert "1 dimensions, 2 tags" in result.stdout


def test_the_analysts_session(folder: Path) -> None:
    live = run_steps(readme_block(ANALYST), folder, loose=True)
    assert not live
    replayed = shell("tagengine replay history.jsonl --catalog vip3000.yaml > /dev/null", folder)
    assert re.search(r"^history\.jsonl:\d+: malformed_json: ", replayed.stderr, re.M), (
        "the README says a few lines of a generated file are broken and reported with their line numbers")
    live = run_steps(readme_block(ANALYST_EXPLAIN), folder, loose=True)
    assert [s.command.split()[0] for s in live] == ["curl", "curl", "tagengine"]  # run by tests/test_newcomer.py


def test_the_readme_links_only_files_in_the_repository() -> None:
    """Issue 11: documentation that stands alone: no link leaves the clone, and none is broken."""
    text = README.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets
    local = [t.split("#")[0] for t in targets if not t.startswith(("http://", "https://", "#"))]
    assert all(not t.startswith(("..", "/")) for t in local), local
    assert [t for t in local if not (ROOT / t).exists()] == []
