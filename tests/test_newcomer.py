"""The newcomer's path on a fresh clone (issue 11): the README's `make run`, then, in another
terminal and with nothing exported, `tagengine generate` and `tagengine watch --json`.

`make run` is `make install cockpit` (done by `make test` before the tests) and then
`scripts/run.sh`, which this test runs from a folder of its own, as a clone would have it:
`scripts/run.sh`, `scripts/services.py` and `.venv/bin` (the test's own). No second Kafka is
started: `run.sh` is given the session's broker and Redis through KAFKA_BOOTSTRAP_SERVERS /
REDIS_URL, the way the README says `make run` uses running servers, so `scripts/services.py`
writes `.cache/services/env.sh` naming them exactly as `make services` would. The commands of the
"other terminal" then run in that folder with no KAFKA_*, REDIS_URL or TAGENGINE_* variable at
all: they must find the engine through that file.

The engine runs under the default names (topics `orders`, `tag-changes`, ..., group `tagengine`),
which no other test uses (they all take unique prefixes). A rerun on the same broker finds the
earlier runs' messages there, so only what `watch` prints after it started counts, and only tag
changes of customers that `make run`'s own generator (300 customers) never touches.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError

from tests.conftest import ROOT, Services
from tests.eventually import eventually
from tests.ports import free_port
from tests.test_readme import ANALYST, ANALYST_EXPLAIN, WHILE_RUNNING, assert_shows, readme_block, steps

pytestmark = pytest.mark.integration

RUN_SH_CUSTOMERS = 300  # scripts/run.sh: tagengine generate --customers 300


def newcomer_env() -> dict[str, str]:
    """A fresh terminal: nothing about Kafka, Redis or the engine exported."""
    return {k: v for k, v in os.environ.items()
            if not (k.startswith(("KAFKA_", "TAGENGINE_")) or k == "REDIS_URL")}


def fresh_clone(folder: Path) -> Path:
    """What `make run` needs of a clone once `make install` has run: the two scripts and the
    virtualenv's commands (this test's own, which run the package under test)."""
    (folder / "scripts").mkdir(parents=True)
    for script in ("run.sh", "services.py"):
        shutil.copy2(ROOT / "scripts" / script, folder / "scripts" / script)
    (folder / "rules").symlink_to(ROOT / "rules")  # the README's analyst reads the default catalog
    bin_dir = Path(sys.executable).parent
    (folder / ".venv").mkdir()
    if (bin_dir / "tagengine").is_file():
        (folder / ".venv" / "bin").symlink_to(bin_dir)
    else:  # a Python without the console script: the same entry point
        (folder / ".venv" / "bin").mkdir()
        shim = folder / ".venv" / "bin" / "tagengine"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m streams.cli "$@"\n')
        shim.chmod(0o755)
    return folder


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


async def default_group_busy(kafka: str) -> bool:
    """Whether a worker under the default names already runs on this broker (a `make run` of
    someone sharing it): this test's worker would join its group and take half its partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()

    async def described() -> list[Any] | None:
        try:
            return list(await admin.describe_consumer_groups(["tagengine"]))
        except GroupCoordinatorNotAvailableError:  # a broker still loading its group metadata
            return None

    try:
        responses = await eventually(described, what="the group coordinator answers", interval=0.5)
    finally:
        await admin.close()
    return any(group[5] for response in responses for group in response.groups)  # (.., members)


class Terminal:
    """A command running in the background in its own process group, its output in a file."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], output: Path) -> None:
        self.output = output
        with output.open("wb") as out:
            self.process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=_ctrl_c_as_in_a_terminal)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self, timeout: float = 40) -> None:
        """Ctrl-C, as a person would; SIGKILL for whatever of the group is left after ``timeout``."""
        pgid = self.process.pid  # its own session: the group id is its pid
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # children that outlived their parent
        self.process.wait(timeout=10)


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child, before exec: Ctrl-C (SIGINT) at its default, as in a terminal's shell. A test
    run started in the background of a non-interactive shell (``make test &``) inherits SIGINT
    ignored, and bash can neither trap nor be stopped by a signal ignored when it started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    try:
        yield opened
    finally:
        for terminal in reversed(opened):
            terminal.stop()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def json_lines(text: str) -> list[dict[str, object]]:
    found = []
    for line in text.splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            value = orjson.loads(line)
            if isinstance(value, dict):
                found.append(value)
    return found


async def test_make_run_then_generate_and_watch_in_another_terminal_with_no_exports(
    services: Services, tmp_path: Path
) -> None:
    if await default_group_busy(services.kafka):
        pytest.skip("a worker under the default names already runs on this broker (a `make run`?)")
    clone = fresh_clone(tmp_path / "clone")
    # `make run` with the servers of the session, as the README says it takes running ones; a web
    # port other than 6066 only if something holds 6066 (run.sh honours TAGENGINE_WEB_PORT).
    port = 6066 if port_free(6066) else free_port()
    make_run_env = {**newcomer_env(), "KAFKA_BOOTSTRAP_SERVERS": services.kafka, "REDIS_URL": services.redis or "none"}
    if port != 6066:
        make_run_env["TAGENGINE_WEB_PORT"] = str(port)
    health = f"http://127.0.0.1:{port}/health"

    with terminals() as opened:
        make_run = Terminal(["bash", "scripts/run.sh"], clone, make_run_env, tmp_path / "make-run.out")
        opened.append(make_run)

        def worker_ok() -> bool:
            if make_run.process.poll() is not None:
                raise AssertionError(f"make run exited with {make_run.process.returncode}:\n{make_run.text()}\n"
                                     + _tail(clone / ".cache" / "run" / "worker.log"))
            status, body = get(health)
            return status == 200 and orjson.loads(body)["status"] == "ok"

        await eventually(worker_ok, timeout=90, what="the worker's /health says ok", interval=0.2)
        env_file = (clone / ".cache" / "services" / "env.sh").read_text()
        assert f"export KAFKA_BOOTSTRAP_SERVERS={services.kafka}\n" in env_file

        # Another terminal, in the clone, with nothing exported.
        terminal = newcomer_env()
        watch = Terminal([".venv/bin/tagengine", "watch", "--json"], clone, terminal, tmp_path / "watch.out")
        opened.append(watch)
        generate = await asyncio.to_thread(
            subprocess.run, [".venv/bin/tagengine", "generate", "--duration", "6", "--rate", "50",
                             "--customers", "5000"],
            cwd=clone, env=terminal, capture_output=True, text=True, timeout=60, check=False,
        )
        assert generate.returncode == 0, generate.stderr
        assert "generated " in generate.stderr and "Traceback" not in generate.stderr

        def changes_of_the_generated_customers() -> list[dict[str, object]]:
            if watch.process.poll() is not None:
                raise AssertionError(f"watch exited with {watch.process.returncode}:\n{watch.text()}")
            return [m for m in json_lines(watch.text()) if m["topic"] == "tag-changes"
                    and _number(m["value"]) > RUN_SH_CUSTOMERS and m["value"]["trigger"] == "event"]

        mine = await eventually(changes_of_the_generated_customers, timeout=60,
                                what="watch --json prints tag changes of the generated customers")
        assert {"change_id", "customer_id", "seq", "dimension", "to", "rule_id"} <= set(mine[0]["value"])

        # What `make run` itself shows: the tag changes of its own generator, as they happen.
        await eventually(lambda: "CHANGE " in make_run.text(), timeout=30, what="make run shows tag changes")
        await readme_lines_against_the_running_engine(clone, terminal, port)
        assert "Traceback" not in make_run.text() + watch.text()

    stopped = make_run.text()
    assert "stopped the worker and the generator" in stopped, stopped
    assert get(health)[0] == 0, "the worker still answers after make run was stopped"


async def readme_lines_against_the_running_engine(clone: Path, env: dict[str, str], port: int) -> None:
    """The README's lines for a running `make run` (tests/test_readme.py runs the rest)."""
    env = {**env, "PATH": f"{clone / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"}

    def shell(command: str) -> subprocess.CompletedProcess[str]:
        if port != 6066:  # something else held 6066: make run was given another port
            command = command.replace("localhost:6066", f"localhost:{port}")
            if command.startswith("tagengine catalog dry-run"):
                command += f" --url http://localhost:{port}"
        return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=clone, env=env, capture_output=True,
                              text=True, timeout=60, check=False)

    health, customer, metrics = (s.command for s in steps(readme_block(WHILE_RUNNING)))
    healthy = shell(health)
    assert healthy.returncode == 0 and {"status": "ok"}.items() <= orjson.loads(healthy.stdout).items()
    assert "catalog_version" in orjson.loads(healthy.stdout)

    def known() -> bool:  # c0000001 is the busiest customer of make run's generator: it comes soon
        answer = shell(customer)
        assert answer.returncode == 0, answer.stderr
        return "tags" in orjson.loads(answer.stdout)

    await eventually(known, timeout=30, what=customer, interval=0.5)
    shown = shell(metrics)
    assert shown.returncode == 0 and "tagengine_events_in_total{" in shown.stdout

    for step in steps(readme_block(ANALYST)):  # the candidate catalog the live lines use
        if step.command.startswith("sed "):
            assert shell(step.command).returncode == 0
    explain, audience, dry_run = (s for s in steps(readme_block(ANALYST_EXPLAIN)) if s.live)
    explained = shell(explain.command)
    assert explained.returncode == 0 and orjson.loads(explained.stdout), explained.stdout  # the customer, or a 404
    shown = shell(audience.command)
    assert shown.returncode == 0
    assert_shows(shown.stdout, audience.expected, loose=True, what=f"README.md: {audience.command}")
    dry = await asyncio.to_thread(shell, dry_run.command)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("catalog ") and "publishing it would create " in dry.stdout, dry.stdout


def _number(change: object) -> int:
    customer = str(change["customer_id"]) if isinstance(change, dict) else ""
    return int(customer[1:]) if customer[:1] == "c" and customer[1:].isdigit() else 0


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"
