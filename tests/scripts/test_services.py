"""scripts/services.py: the local Kafka and Redis that `make run` and `make test` start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, Services

SERVICES = ROOT / "scripts" / "services.py"


def services_py(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SERVICES), *args], env=env, capture_output=True, text=True,
                          timeout=120, check=True)


def test_start_keeps_its_own_redis_when_the_environment_exports_it(services: Services, tmp_path: Path) -> None:
    # The session's broker stands in for Kafka, so that only Redis is started here.
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {"KAFKA_BOOTSTRAP_SERVERS": services.kafka}
    folder = str(tmp_path / "services")
    try:
        first = json.loads(services_py("start", "--dir", folder, "--json", env=env).stdout.splitlines()[-1])
        pid = json.loads((tmp_path / "services" / "state.json").read_text())["redis"]["pid"]
        # What a user does after `eval "$(python3 scripts/services.py start)"`: start again with
        # the printed settings exported (make run does so).
        again = services_py("start", "--dir", folder, "--json", env=env | {"REDIS_URL": first["REDIS_URL"]})
        assert json.loads(again.stdout.splitlines()[-1])["REDIS_URL"] == first["REDIS_URL"]
        os.kill(pid, 0)  # still running
        assert json.loads((tmp_path / "services" / "state.json").read_text())["redis"]["pid"] == pid
    finally:
        services_py("stop", "--dir", folder, env=env)
