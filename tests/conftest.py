"""Session fixtures: one real Kafka broker and one Redis server for the whole test session.

If KAFKA_BOOTSTRAP_SERVERS (and REDIS_URL) point at running servers, those are used; otherwise
``scripts/services.py`` starts a private broker and Redis in ``.cache/test-services`` and stops
them when the session ends. Unit tests never ask for this fixture and never wait for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Services:
    kafka: str
    redis: str | None


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if kafka:
        redis = os.environ.get("REDIS_URL")
        yield Services(kafka, None if redis in (None, "", "none") else redis)
        return
    folder = ROOT / ".cache" / "test-services"
    script = [sys.executable, str(ROOT / "scripts" / "services.py")]
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    started = subprocess.run(
        [*script, "start", "--dir", str(folder), "--json"],
        env=env, stdout=subprocess.PIPE, stderr=sys.stderr, text=True, timeout=600, check=False,
    )
    if started.returncode != 0:
        pytest.fail(f"could not start Kafka and Redis (scripts/services.py exit {started.returncode})")
    settings = json.loads(started.stdout.strip().splitlines()[-1])
    try:
        yield Services(settings["KAFKA_BOOTSTRAP_SERVERS"], settings.get("REDIS_URL"))
    finally:
        subprocess.run([*script, "stop", "--dir", str(folder)], env=env, timeout=120, check=False)
