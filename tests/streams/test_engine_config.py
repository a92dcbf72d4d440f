"""The worker's Faust app takes its configuration from Settings alone."""

from __future__ import annotations

import pytest

from rules.catalog import load_default_catalog
from streams.app import Engine
from streams.settings import Settings


def test_faust_variables_in_the_environment_do_not_override_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("WEB_PORT", "7777")
    monkeypatch.setenv("TOPIC_PARTITIONS", "3")
    settings = Settings.from_env({"TAGENGINE_WEB_PORT": "16066", "TAGENGINE_DATADIR": str(tmp_path),
                                  "REDIS_URL": "none"})
    conf = Engine(settings, load_default_catalog()).app.conf
    assert (conf.web_port, conf.topic_partitions) == (16066, settings.partitions)
    assert conf.web_tables_enabled is False  # Faust's raw table pages stay off


def test_one_standby_copy_per_partition_unless_the_settings_say_otherwise(tmp_path: object) -> None:
    base = {"TAGENGINE_DATADIR": str(tmp_path), "REDIS_URL": "none"}
    assert Engine(Settings.from_env(base), load_default_catalog()).app.conf.table_standby_replicas == 1
    settings = Settings.from_env({**base, "TAGENGINE_STANDBY_REPLICAS": "0"})
    assert Engine(settings, load_default_catalog()).app.conf.table_standby_replicas == 0
