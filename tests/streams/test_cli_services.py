"""Command-line errors that need a real broker to reach them (issue 11: one clear line, exit
non-zero, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from connectors.changelog import changelog_topic
from tests.conftest import ROOT, Services
from tests.streams.harness import unique_name

pytestmark = pytest.mark.integration


async def test_redis_sync_with_redis_unreachable_says_so_in_one_line_and_exits_1(services: Services) -> None:
    app_id = unique_name()
    admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka)
    await admin.start()
    try:  # a (still empty) changelog to read: redis-sync reaches Redis after it
        await admin.create_topics([NewTopic(changelog_topic(app_id), 1, 1)])
    finally:
        await admin.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGENGINE_")}
    env.update(KAFKA_BOOTSTRAP_SERVERS=services.kafka, REDIS_URL="redis://127.0.0.1:1/0", TAGENGINE_APP_ID=app_id)
    result = subprocess.run([sys.executable, "-m", "streams.cli", "redis-sync"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().split("\r")[-1].splitlines()[-1]
    assert last.startswith("tagengine: cannot reach Redis at redis://127.0.0.1:1/0 (")
    assert last.endswith("start the local services with `make services`, or set REDIS_URL")
