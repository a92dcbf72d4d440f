"""Configuration: one typed settings object, read from the environment once, passed down.

Every variable has a default that works on a developer machine (SPEC section 7). Nothing else in
the code reads ``os.environ``. When ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` are not set, the
servers ``make services`` / ``make run`` started (``scripts/services.py`` writes their addresses to
``.cache/services/env.sh``, in the current folder or the repository) are used: every command finds
them without an export, and an explicit setting still wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

N = TypeVar("N", int, float)

LOCAL_SERVICES = Path(".cache") / "services" / "env.sh"
_REPOSITORY = Path(__file__).resolve().parents[1]


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_bootstrap_servers: str = "localhost:9092"
    redis_url: str | None = "redis://localhost:6379/0"  # None: no Redis projection
    catalog_path: Path | None = None  # None: the default catalog shipped with the package
    partitions: int = 8
    web_port: int = 6066
    web_host: str = "0.0.0.0"
    # How other workers reach this one's HTTP API, for forwarded requests.
    advertised_url: str | None = None
    admin_token: str | None = field(default=None, repr=False)
    # The cockpit's page sources and built assets (streams/cockpit.py); None: ``cockpit/`` of the
    # source tree, where ``make cockpit`` builds them.
    cockpit_dir: Path | None = None
    topic_prefix: str = ""
    store: str = "rocksdb"  # or "memory" (tests)
    datadir: Path = Path("tagengine-data")
    # The Kafka group and the prefix of Faust's own topics (the changelog): by default the topic
    # prefix followed by "tagengine", so a prefix namespaces everything the engine creates.
    app_id: str = "tagengine"
    # How long the group waits for a silent worker before giving its partitions to others: the
    # pause a crashed worker causes. Faust's 60 s default is long for an engine that fires timers.
    session_timeout: float = 20.0
    # Standby copies per partition, each kept by another worker from the changelog, so that a
    # takeover need not read the changelog from the start. Replaying a standby costs a worker CPU
    # per record of the other workers' changelogs (docs/operations.md, "Standby copies").
    standby_replicas: int = 1
    # Deadlines: how often the timer looks for due customers, and how many one tick may fire
    # (the bound on catch-up work between two batches of events).
    timer_interval: float = 0.2
    timer_batch: int = 1000
    batch_size: int = 5000
    batch_seconds: float = 0.05
    # Records of the input topics straight from Faust's fetch loop in whole fetches
    # (streams/batch_intake.py); False: through a Faust agent's take_events, record by record.
    batch_intake: bool = True
    # Decoded customer states kept in memory between batches (0: decode on every batch).
    state_cache: int = 50_000
    # Fault testing only: stop the process (as kill -9 would) right after the Nth batch has written
    # its states to the changelog, before its outputs (0: never).
    fault_exit_after_changelog: int = 0
    # Kafka security, passed through to the clients as-is (SPEC section 7).
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """From ``env``; by default from the process environment over the local services' file."""
        env = {**local_services(), **os.environ} if env is None else env
        d = cls()  # the defaults
        redis_url = env.get("REDIS_URL", d.redis_url or "")
        catalog = env.get("TAGENGINE_CATALOG", "")
        store = env.get("TAGENGINE_STORE", d.store)
        topic_prefix = env.get("TAGENGINE_TOPIC_PREFIX", "")
        if store not in ("rocksdb", "memory"):
            raise SettingsError(f"TAGENGINE_STORE must be rocksdb or memory, not {store!r}")
        return cls(
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", d.kafka_bootstrap_servers),
            redis_url=None if redis_url.lower() in ("", "none") else redis_url,
            catalog_path=Path(catalog) if catalog else None,
            partitions=_number(env, "TAGENGINE_PARTITIONS", d.partitions, minimum=1),
            web_port=_number(env, "TAGENGINE_WEB_PORT", d.web_port, minimum=0),
            web_host=env.get("TAGENGINE_WEB_HOST", d.web_host),
            admin_token=env.get("TAGENGINE_ADMIN_TOKEN") or None,
            cockpit_dir=Path(env["TAGENGINE_COCKPIT_DIR"]) if env.get("TAGENGINE_COCKPIT_DIR") else None,
            advertised_url=env.get("TAGENGINE_ADVERTISED_URL") or None,
            topic_prefix=topic_prefix,
            store=store,
            datadir=Path(env.get("TAGENGINE_DATADIR", str(d.datadir))),
            app_id=env.get("TAGENGINE_APP_ID") or topic_prefix + d.app_id,
            session_timeout=_number(env, "TAGENGINE_SESSION_TIMEOUT", d.session_timeout, minimum=1.0),
            standby_replicas=_number(env, "TAGENGINE_STANDBY_REPLICAS", d.standby_replicas, minimum=0),
            timer_interval=_number(env, "TAGENGINE_TIMER_INTERVAL", d.timer_interval, minimum=0.01),
            timer_batch=_number(env, "TAGENGINE_TIMER_BATCH", d.timer_batch, minimum=1),
            batch_size=_number(env, "TAGENGINE_BATCH_SIZE", d.batch_size, minimum=1),
            batch_seconds=_number(env, "TAGENGINE_BATCH_SECONDS", d.batch_seconds, minimum=0.0),
            batch_intake=env.get("TAGENGINE_BATCH_INTAKE", "1").lower() not in ("0", "false", "no"),
            state_cache=_number(env, "TAGENGINE_STATE_CACHE", d.state_cache, minimum=0),
            fault_exit_after_changelog=_number(env, "TAGENGINE_FAULT_EXIT_AFTER_CHANGELOG", 0, minimum=0),
            kafka_security_protocol=env.get("KAFKA_SECURITY_PROTOCOL", d.kafka_security_protocol),
            kafka_sasl_mechanism=env.get("KAFKA_SASL_MECHANISM") or None,
            kafka_sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
            kafka_sasl_password=env.get("KAFKA_SASL_PASSWORD") or None,
            kafka_ssl_cafile=env.get("KAFKA_SSL_CAFILE") or None,
            kafka_ssl_certfile=env.get("KAFKA_SSL_CERTFILE") or None,
            kafka_ssl_keyfile=env.get("KAFKA_SSL_KEYFILE") or None,
        )

    def topic(self, name: str) -> str:
        """The real name of a logical topic (``orders`` -> ``<prefix>orders``)."""
        return f"{self.topic_prefix}{name}"


def local_services(folders: tuple[Path, ...] | None = None) -> dict[str, str]:
    """The settings ``scripts/services.py`` wrote for the servers it started, if it did (the file
    is removed when they are stopped): ``export NAME=value`` lines."""
    for folder in folders or (Path.cwd(), _REPOSITORY):
        path = folder / LOCAL_SERVICES
        if path.is_file():
            found = {}
            for line in path.read_text().splitlines():
                name, _, value = line.removeprefix("export ").partition("=")
                if value and not line.startswith("#"):
                    found[name.strip()] = value.strip()
            return found
    return {}


def _number(env: Mapping[str, str], name: str, default: N, minimum: N) -> N:
    """``env[name]`` as the type of ``default`` (int or float), at least ``minimum``."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{name} must be {what}, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value
