#!/usr/bin/env python3
"""Start and stop a local Apache Kafka broker (KRaft) and a Redis server.

For development and tests on a machine without Docker.  Standard library
only, so it runs with the system ``python3`` before any virtualenv exists.

Kafka is not packaged by Debian, so the broker's classpath is fetched once
from Maven Central with ``mvn dependency:copy-dependencies`` on a
one-dependency pom (``org.apache.kafka:kafka_2.13``) into
``<repo>/.cache/kafka/<VERSION>/libs``.  The broker is then run straight from
that classpath, the way the Kafka distribution's own start scripts do:
``kafka.tools.StorageTool format`` followed by ``kafka.Kafka``.  Redis is
Debian's ``redis-server``.

Usage::

    python3 scripts/services.py start [--dir DIR] [--kafka-port N] [--redis-port N] [--json]
    python3 scripts/services.py status [--dir DIR] [--json]
    python3 scripts/services.py stop [--dir DIR]
    python3 scripts/services.py fetch

``start`` is idempotent: DIR (default ``<repo>/.cache/services``) holds a
state file with the pids and ports, and processes that are still alive and
answering are reused.  Every fresh broker start formats a fresh, empty log
directory, so no state survives from a previous (possibly crashed) run.
Several DIRs can run side by side, each with its own broker and Redis.

If KAFKA_BOOTSTRAP_SERVERS (or REDIS_URL) is already set and reachable, that
server is reported instead of starting one; REDIS_URL=none means no Redis.

The settings to export are printed (``export KAFKA_BOOTSTRAP_SERVERS=...``)
and written to ``DIR/env.sh``; with ``--json`` the last stdout line is one
JSON object instead.  Progress messages always go to stderr.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlparse

# Kafka 4.4.0 is the newest release Maven Central serves here.  Checked with
# the project's clients (aiokafka 0.14.0, faust-streaming 0.15.3): aiokafka
# admin creating an 8-partition topic, producing 1000 messages (idempotent)
# and consuming them all in a consumer group (first batch after < 1 s thanks
# to group.initial.rebalance.delay.ms=0), an aiokafka transaction, and a
# faust app with one agent and a memory:// table, at_least_once and
# exactly_once, including the table coming back from its changelog after a
# restart.  3.9.1 behaved the same.  Override with SERVICES_KAFKA_VERSION
# (e.g. 4.1.1 or 3.9.1) to try another release.
KAFKA_VERSION = os.environ.get("SERVICES_KAFKA_VERSION", "4.4.0")

# Kafka 4.x logs through log4j2 but its pom brings no slf4j binding, so the
# broker would log nothing (slf4j's NOP fallback).  These are added to the pom;
# versions match the log4j-core that kafka_2.13 4.4.0 depends on.
LOG4J2_VERSION = "2.25.5"
SLF4J2_VERSION = "2.0.17"
# Kafka 3.x logs through log4j 1 (reload4j) with slf4j 1.7.
SLF4J1_VERSION = "1.7.36"

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
DEFAULT_DIR = CACHE / "services"

DEFAULT_KAFKA_PORT = 9092
DEFAULT_REDIS_PORT = 6379
START_TIMEOUT = 120.0  # seconds to wait for a service to answer
STOP_TIMEOUT = 30.0  # seconds between SIGTERM and SIGKILL

# Two cores are shared with the tests: keep the JVM small.
JVM_OPTS = [
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]

KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
# Logged by KafkaRaftServer once the broker is unfenced and serving.
KAFKA_STARTED_MARKERS = ("Kafka Server started", "started (kafka.server.KafkaRaftServer)")


class ServiceError(Exception):
    """A failure with a message meant for the user (no traceback)."""


def log(msg: str) -> None:
    """Progress goes to stderr so stdout stays machine-readable."""
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Small process / network helpers
# --------------------------------------------------------------------------


def pid_alive(pid: int | None, marker: str | None = None) -> bool:
    """True if pid runs, is not a zombie, and (if given) its cmdline has marker.

    The marker guards against a pid recycled by an unrelated process after a
    reboot or a long time.  Zombies count as dead: a container's init may
    never reap the detached children of an exited script.
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        comm, rest = stat.split("(", 1)[1].rsplit(")", 1)
        if rest.split()[0] in ("Z", "X"):
            return False
        if marker is not None:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            # Redis rewrites its cmdline (proc title), which can read empty
            # for a moment; its comm keeps the program name.
            return not cmdline.strip() or marker.encode() in cmdline or marker == comm
    except OSError:
        return False  # vanished meanwhile
    return True


def pids_in_dir(folder: Path) -> list[int]:
    """Pids of processes whose working directory is folder.

    Services run with their run folder as cwd, which finds one this script
    lost track of (state file deleted or overwritten) even when, like Redis,
    it rewrites its command line.
    """
    found = []
    target = str(folder.resolve())
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if os.readlink(proc / "cwd") == target:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port and we could bind it."""
    if tcp_open("127.0.0.1", port, timeout=0.5):
        return False
    with socket.socket() as s:
        # Like the servers themselves (Java, Redis) use SO_REUSEADDR, so that
        # TIME_WAIT connections left by a killed server don't count as "used".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the kernel considers free right now (bind to port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pick_port(explicit: int | None, preferred: int | None, avoid: set[int] = frozenset()) -> int:
    """The explicit port (must be free), else preferred if free, else any free one."""
    if explicit:
        if not port_free(explicit):
            raise ServiceError(f"port {explicit} is already in use (another service or DIR?)")
        return explicit
    if preferred and preferred not in avoid and port_free(preferred):
        return preferred
    while True:
        port = free_port()
        if port not in avoid:
            return port


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def spawn_detached(cmd: list[str], cwd: Path, logfile: Path) -> int:
    """Start cmd in its own session with output to logfile; return its pid.

    Its own session (and process group) keeps it alive after this script
    exits and out of reach of the caller's Ctrl-C; stdin is closed and
    stdout/stderr go to a file so a caller capturing our output (e.g.
    subprocess.run(capture_output=True)) does not wait for the service.
    """
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    SPAWNED[proc.pid] = proc
    return proc.pid


SPAWNED: dict[int, subprocess.Popen] = {}
"""What this process started, so that a caller living on after it (a test) can reap it."""


def reap(pid: int, timeout: float = 30) -> None:
    """Wait for a service this process started and that was stopped or killed."""
    proc = SPAWNED.pop(pid, None)
    if proc is not None:
        proc.wait(timeout=timeout)


def terminate(pid: int | None, marker: str, name: str) -> None:
    """SIGTERM the service's process group, SIGKILL it after STOP_TIMEOUT."""
    if not pid_alive(pid, marker):
        return
    log(f"stopping {name} (pid {pid})...")

    def send(sig: int) -> None:
        # Services are session leaders (pgid == pid); signal the whole group
        # so no helper process is left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    send(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not pid_alive(pid, marker):
            return
        time.sleep(0.2)
    log(f"{name} (pid {pid}) did not stop within {STOP_TIMEOUT:.0f}s; killing it")
    send(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid, marker) and time.monotonic() < deadline:
        time.sleep(0.1)


@contextlib.contextmanager
def file_lock(path: Path):
    """Exclusive flock so concurrent starts on one DIR (or one fetch) queue up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------
# Fetching Kafka
# --------------------------------------------------------------------------


def kafka_major() -> int:
    return int(KAFKA_VERSION.split(".")[0])


def kafka_home() -> Path:
    return CACHE / "kafka" / KAFKA_VERSION


def libs_dir() -> Path:
    return kafka_home() / "libs"


def pom_xml() -> str:
    def dep(group: str, artifact: str, version: str) -> str:
        return (
            f"    <dependency><groupId>{group}</groupId>"
            f"<artifactId>{artifact}</artifactId><version>{version}</version></dependency>\n"
        )

    deps = dep("org.apache.kafka", "kafka_2.13", KAFKA_VERSION)
    if kafka_major() >= 4:
        # Direct dependencies win Maven's version mediation, which keeps the
        # log4j2 api/core/binding trio on one version.
        for artifact in ("log4j-api", "log4j-core", "log4j-slf4j2-impl"):
            deps += dep("org.apache.logging.log4j", artifact, LOG4J2_VERSION)
        deps += dep("org.slf4j", "slf4j-api", SLF4J2_VERSION)
    else:
        deps += dep("org.slf4j", "slf4j-reload4j", SLF4J1_VERSION)
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>local.dev</groupId><artifactId>kafka-broker-classpath</artifactId>\n"
        f"  <version>{KAFKA_VERSION}</version><packaging>pom</packaging>\n"
        f"  <dependencies>\n{deps}  </dependencies>\n"
        "</project>\n"
    )


def classpath_ok(libs: Path) -> bool:
    """True if libs holds jars providing kafka.Kafka and the StorageTool."""
    wanted = {c.replace(".", "/") + ".class" for c in (KAFKA_MAIN, STORAGE_TOOL)}
    if not libs.is_dir():
        return False
    for jar in libs.glob("*.jar"):
        try:
            with zipfile.ZipFile(jar) as z:
                wanted -= set(z.namelist()) & wanted
        except (OSError, zipfile.BadZipFile):
            return False  # a truncated download: fetch again
        if not wanted:
            return True
    return False


def require_java() -> str:
    java = shutil.which("java")
    if not java:
        raise ServiceError(
            "java not found: Kafka needs Java 17+ (apt-get install -y openjdk-17-jre-headless)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    # e.g. 'openjdk version "17.0.15" 2025-04-15' or '"1.8.0_392"'
    try:
        ver = out.split('"')[1]
        major = int(ver.split(".")[1] if ver.startswith("1.") else ver.split(".")[0])
    except (IndexError, ValueError):
        return java  # unknown format: let the JVM complain if it must
    if major < 17:
        raise ServiceError(f"Kafka {KAFKA_VERSION} needs Java 17+, found {ver} at {java}")
    return java


def fetch_kafka() -> Path:
    """Download the broker's classpath once; return the libs folder."""
    libs = libs_dir()
    if classpath_ok(libs):
        return libs
    # Parallel starts (e.g. two test sessions) must not both download into
    # the same folder: the second waits here and then finds the jars.
    with file_lock(kafka_home().parent / f".{KAFKA_VERSION}.lock"):
        if classpath_ok(libs):
            return libs
        mvn = shutil.which("mvn")
        if not mvn:
            raise ServiceError(
                "mvn not found: it is needed once to fetch Kafka from Maven Central "
                "(apt-get install -y maven)"
            )
        home = kafka_home()
        home.mkdir(parents=True, exist_ok=True)
        (home / "pom.xml").write_text(pom_xml())
        # Download into a scratch folder and rename it into place, so an
        # interrupted fetch never leaves a half-filled libs/ behind.
        tmp = home / "libs.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central (one time, ~50-100 MB)...")
        started = time.monotonic()
        proc = subprocess.run(
            [
                mvn, "-q", "-B", "-f", str(home / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
            ],
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            out = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
            raise ServiceError(f"mvn failed to fetch Kafka {KAFKA_VERSION}:\n{out}")
        if not classpath_ok(tmp):
            raise ServiceError(
                f"fetched jars in {tmp} lack {KAFKA_MAIN} or {STORAGE_TOOL}; "
                "is the version right?"
            )
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
        size = sum(f.stat().st_size for f in libs.glob("*.jar")) / 1e6
        log(f"fetched Kafka {KAFKA_VERSION} ({size:.0f} MB) in {time.monotonic() - started:.0f}s")
    return libs


# --------------------------------------------------------------------------
# Kafka broker
# --------------------------------------------------------------------------


def random_cluster_id() -> str:
    # Kafka's Uuid text form: URL-safe base64 of 16 random bytes, unpadded.
    # One starting with '-' would be read as an option by the format tool.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def server_properties(run: Path, port: int, controller_port: int) -> str:
    quorum = (
        # 4.x: a dynamic quorum, bootstrapped by `format --standalone`.
        f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}\n"
        if kafka_major() >= 4
        else f"controller.quorum.voters=1@127.0.0.1:{controller_port}\n"
    )
    return f"""\
# Written by scripts/services.py: a single-node dev broker.  Rewritten per start.
process.roles=broker,controller
node.id=1
{quorum}\
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={run / "data"}

# One broker: every internal topic has a single replica.
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the defaults (50) make the first group join
# and the first transaction much faster on a fresh broker.
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=4

# Tests: no 3 s wait for more members before the first rebalance.
group.initial.rebalance.delay.ms=0
num.partitions=8
auto.create.topics.enable=true
delete.topic.enable=true

# A dev box: few threads, small segments, short retention.
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
log.segment.bytes=16777216
log.retention.hours=6
log.retention.bytes=268435456
log.retention.check.interval.ms=60000
"""


def log4j_config(run: Path) -> tuple[str, str, str]:
    """(file name, contents, JVM option) for the broker's logging config.

    WARN everywhere, plus INFO from the server lifecycle classes so the log
    shows the "Kafka Server started" line that start waits for.
    """
    logfile = run / "server.log"
    lifecycle = ["kafka.server.KafkaRaftServer", "kafka.server.BrokerServer",
                 "kafka.server.ControllerServer", "kafka.Kafka"]
    if kafka_major() >= 4:
        loggers = "\n".join(
            f"logger.l{i}.name = {name}\nlogger.l{i}.level = INFO"
            for i, name in enumerate(lifecycle)
        )
        text = f"""\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {logfile}
appender.file.append = false
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
{loggers}
"""
        return "log4j2.properties", text, f"-Dlog4j2.configurationFile={run / 'log4j2.properties'}"
    loggers = "\n".join(f"log4j.logger.{name}=INFO" for name in lifecycle)
    text = f"""\
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={logfile}
log4j.appender.file.Append=false
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
{loggers}
"""
    return "log4j.properties", text, f"-Dlog4j.configuration=file:{run / 'log4j.properties'}"


def kafka_api_versions_ok(port: int, timeout: float = 2.0) -> bool:
    """Send an ApiVersions v0 request and check for an error-free answer.

    A TCP connect alone succeeds before the broker serves requests; this is
    the same first request every Kafka client sends.
    """
    client_id = b"services.py"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(s, 4)
            (size,) = struct.unpack(">i", head)
            resp = _recv_exact(s, size)
    except (OSError, ValueError):
        return False
    correlation_id, error_code = struct.unpack(">ih", resp[:6])
    return correlation_id == 7 and error_code == 0


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ValueError("connection closed")
        buf += chunk
    return buf


def start_kafka(ddir: Path, explicit_port: int | None, avoid: set[int]) -> dict:
    """Format a fresh log dir and start a broker; return its state entry."""
    java = require_java()
    libs = fetch_kafka()
    run = ddir / "kafka"
    props = run / "server.properties"
    # A broker of this DIR that the state file no longer knows would hold
    # its ports and lose its data below.
    for pid in pids_in_dir(run):
        terminate(pid, KAFKA_MAIN, "an orphaned Kafka of this DIR")

    port = pick_port(explicit_port, DEFAULT_KAFKA_PORT, avoid)
    controller_port = pick_port(None, None, avoid | {port})
    # A fresh, empty data folder per start: a crashed run's data (or one
    # formatted with another cluster id) would otherwise stop the broker.
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    props.write_text(server_properties(run, port, controller_port))
    cfg_name, cfg_text, log_opt = log4j_config(run)
    (run / cfg_name).write_text(cfg_text)
    classpath = f"{libs}/*"

    fmt = [java, "-Xmx256m", log_opt, "-cp", classpath, STORAGE_TOOL, "format",
           "-t", random_cluster_id(), "-c", str(props)]
    if kafka_major() >= 4:
        fmt.append("--standalone")
    proc = subprocess.run(fmt, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise ServiceError(f"formatting Kafka's log dir failed:\n{proc.stdout}{proc.stderr}")

    log(f"starting Kafka {KAFKA_VERSION} on 127.0.0.1:{port} (controller {controller_port})...")
    pid = spawn_detached(kafka_command(java, classpath, run, log_opt), run, run / "stdout.log")
    return {"pid": pid, "port": port, "controller_port": controller_port,
            "run_dir": str(run), "version": KAFKA_VERSION}


def kafka_command(java: str, classpath: str, run: Path, log_opt: str) -> list[str]:
    return [java, *JVM_OPTS, log_opt, f"-Dkafka.logs.dir={run}", "-cp", classpath,
            KAFKA_MAIN, str(run / "server.properties")]


def restart_kafka(entry: dict) -> dict:
    """Start a stopped (or killed) broker again on its data as it was: for tests of what clients
    do through a broker restart. Returns the new state entry."""
    run = Path(entry["run_dir"])
    server_log = run / "server.log"
    if server_log.exists():  # so that "started" means this start
        server_log.replace(run / "server.log.before-restart")
    _, _, log_opt = log4j_config(run)
    log(f"starting Kafka again on 127.0.0.1:{entry['port']}...")
    pid = spawn_detached(kafka_command(require_java(), f"{fetch_kafka()}/*", run, log_opt), run, run / "stdout.log")
    return {**entry, "pid": pid}


def kafka_started_logged(run: Path) -> bool:
    try:
        text = (run / "server.log").read_text(errors="replace")
    except OSError:
        return False
    return any(m in text for m in KAFKA_STARTED_MARKERS)


def kafka_ready(entry: dict) -> bool:
    return (
        pid_alive(entry["pid"], KAFKA_MAIN)
        and kafka_started_logged(Path(entry["run_dir"]))
        and kafka_api_versions_ok(entry["port"])
    )


def wait_kafka(entry: dict) -> None:
    run = Path(entry["run_dir"])
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if kafka_ready(entry):
            return
        if not pid_alive(entry["pid"], KAFKA_MAIN):
            raise ServiceError(
                f"Kafka exited during startup; last lines of {run}/server.log:\n"
                f"{tail(run / 'server.log')}\n--- {run}/stdout.log:\n{tail(run / 'stdout.log')}"
            )
        time.sleep(0.5)
    terminate(entry["pid"], KAFKA_MAIN, "Kafka")
    raise ServiceError(
        f"Kafka did not become ready within {START_TIMEOUT:.0f}s; last lines of "
        f"{run}/server.log:\n{tail(run / 'server.log')}\n--- {run}/stdout.log:\n"
        f"{tail(run / 'stdout.log')}"
    )


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------

REDIS_MARKER = "redis-server"


def find_redis() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("redis-server not found; installing it with apt-get (running as root)...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "redis-server"]
        if subprocess.run(install, env=env, stdout=sys.stderr).returncode != 0:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update", "-q"], env=env, stdout=sys.stderr)
            subprocess.run(install, env=env, stdout=sys.stderr)
        found = shutil.which("redis-server")
        if found:
            return found
    raise ServiceError(
        "redis-server not found: install it with `apt-get install -y redis-server` "
        "(or set REDIS_URL=none to run without Redis)"
    )


def redis_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(ddir: Path, explicit_port: int | None, avoid: set[int]) -> dict:
    server = find_redis()
    run = ddir / "redis"
    for pid in pids_in_dir(run):
        terminate(pid, REDIS_MARKER, "an orphaned Redis of this DIR")
    port = pick_port(explicit_port, DEFAULT_REDIS_PORT, avoid)
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--daemonize", "no", "--dir", str(run)]
    log(f"starting Redis on 127.0.0.1:{port}...")
    pid = spawn_detached(cmd, run, run / "redis.log")
    return {"pid": pid, "port": port, "run_dir": str(run)}


def wait_redis(entry: dict) -> None:
    logfile = Path(entry["run_dir"]) / "redis.log"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if redis_ping("127.0.0.1", entry["port"]):
            return
        if not pid_alive(entry["pid"], REDIS_MARKER):
            raise ServiceError(f"Redis exited during startup; {logfile}:\n{tail(logfile)}")
        time.sleep(0.1)
    terminate(entry["pid"], REDIS_MARKER, "Redis")
    raise ServiceError(f"Redis did not answer PING within {START_TIMEOUT:.0f}s:\n{tail(logfile)}")


# --------------------------------------------------------------------------
# External services from the environment
# --------------------------------------------------------------------------


def external_kafka() -> str | None:
    """KAFKA_BOOTSTRAP_SERVERS from the environment, if one of them answers."""
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    for server in filter(None, (s.strip() for s in servers.split(","))):
        # Accept faust-style 'kafka://host:port' as well as 'host:port'.
        url = urlparse(server if "://" in server else f"kafka://{server}")
        if url.hostname and tcp_open(url.hostname, url.port or 9092):
            return servers
    if servers:
        log(f"KAFKA_BOOTSTRAP_SERVERS={servers} does not answer; starting a broker instead")
    return None


def external_redis() -> str | None:
    """REDIS_URL from the environment if it answers (or is 'none')."""
    value = os.environ.get("REDIS_URL", "").strip()
    if not value:
        return None
    if value.lower() == "none":
        return "none"
    url = urlparse(value)
    if url.hostname and tcp_open(url.hostname, url.port or 6379):
        return value
    log(f"REDIS_URL={value} does not answer; starting Redis instead")
    return None


# --------------------------------------------------------------------------
# State file and commands
# --------------------------------------------------------------------------


def load_state(ddir: Path) -> dict:
    try:
        return json.loads((ddir / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def save_state(ddir: Path, state: dict) -> None:
    tmp = ddir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(ddir / "state.json")


def settings(state: dict) -> dict:
    return {"KAFKA_BOOTSTRAP_SERVERS": state["kafka_bootstrap_servers"],
            "REDIS_URL": state["redis_url"]}


def report(ddir: Path, state: dict, as_json: bool) -> None:
    env = settings(state)
    lines = [f"export {k}={v}" for k, v in env.items()]
    (ddir / "env.sh").write_text("# Written by scripts/services.py\n" + "\n".join(lines) + "\n")
    if as_json:
        print(json.dumps(env), flush=True)
    else:
        print("\n".join(lines), flush=True)
        log(f"(also written to {ddir / 'env.sh'}; stop with: python3 {Path(__file__)} stop"
            + ("" if ddir == DEFAULT_DIR else f" --dir {ddir}") + ")")


def redis_ready(entry: dict) -> bool:
    return pid_alive(entry["pid"], REDIS_MARKER) and redis_ping("127.0.0.1", entry["port"])


def keep(entry: dict | None, ready, marker: str, name: str, port: int | None,
         wanted: bool = True) -> dict | None:
    """entry if its service still answers (on the requested port), else None.

    A stale, half-started or unwanted service (wrong port, or replaced by
    one from the environment) is stopped so its ports and folder are free.
    """
    if wanted and entry and ready(entry) and port in (None, entry["port"]):
        log(f"reusing {name} (pid {entry['pid']}) on 127.0.0.1:{entry['port']}")
        return entry
    if entry:
        terminate(entry["pid"], marker, name)
    return None


def points_at(entry: dict | None, servers: str | None, scheme: str) -> bool:
    """Whether servers from the environment name this folder's own service: the settings its own
    start printed, exported (``eval "$(python3 scripts/services.py start)"``, ``. env.sh``)."""
    if not entry or not servers or servers == "none":
        return False
    for server in filter(None, (s.strip() for s in servers.split(","))):
        url = urlparse(server if "://" in server else f"{scheme}://{server}")
        if url.hostname in ("127.0.0.1", "localhost") and url.port == entry["port"]:
            return True
    return False


def cmd_start(args: argparse.Namespace) -> None:
    ddir = Path(args.dir).resolve()
    ddir.mkdir(parents=True, exist_ok=True)
    with file_lock(ddir / ".lock"):
        state = load_state(ddir)
        ext_kafka, ext_redis = external_kafka(), external_redis()
        for name, value in (("Kafka", ext_kafka), ("Redis", ext_redis)):
            if value and value != "none":
                log(f"using {name} at {value} from the environment")
        # A service of this folder is replaced by one from the environment, unless the
        # environment names that very service (stopping it would leave nothing to use).
        kafka = keep(state.get("kafka"), kafka_ready, KAFKA_MAIN, "Kafka", args.kafka_port,
                     wanted=not ext_kafka or points_at(state.get("kafka"), ext_kafka, "kafka"))
        redis = keep(state.get("redis"), redis_ready, REDIS_MARKER, "Redis", args.redis_port,
                     wanted=not ext_redis or points_at(state.get("redis"), ext_redis, "redis"))
        # Ports of services we keep must not be handed to new ones.
        avoid = {e[k] for e in (kafka, redis) if e for k in ("port", "controller_port") if k in e}

        started = time.monotonic()
        new_kafka = None
        if not ext_kafka and not kafka:
            kafka = new_kafka = start_kafka(ddir, args.kafka_port, avoid)
            avoid |= {kafka["port"], kafka["controller_port"]}
        state.update(kafka=kafka,
                     kafka_bootstrap_servers=ext_kafka or f"127.0.0.1:{kafka['port']}")
        save_state(ddir, state)  # from here on, stop finds the broker

        # Redis starts while the broker's JVM warms up.
        if not ext_redis and not redis:
            redis = start_redis(ddir, args.redis_port, avoid)
            save_state(ddir, {**state, "redis": redis})
            wait_redis(redis)
        state.update(redis=redis,
                     redis_url=ext_redis or f"redis://127.0.0.1:{redis['port']}/0")
        save_state(ddir, state)

        if new_kafka:
            try:
                wait_kafka(new_kafka)
            except ServiceError:
                save_state(ddir, {**state, "kafka": None})
                raise
            log(f"Kafka ready in {time.monotonic() - started:.1f}s")
        report(ddir, state, args.json)


def cmd_status(args: argparse.Namespace) -> None:
    ddir = Path(args.dir).resolve()
    state = load_state(ddir)
    kafka, redis = state.get("kafka"), state.get("redis")
    ok = True
    if kafka:
        up = kafka_ready(kafka)
        ok &= up
        log(f"Kafka pid {kafka['pid']} port {kafka['port']}: {'up' if up else 'DOWN'}")
    if redis:
        up = redis_ping("127.0.0.1", redis["port"])
        ok &= up
        log(f"Redis pid {redis['pid']} port {redis['port']}: {'up' if up else 'DOWN'}")
    if not state:
        raise ServiceError(f"nothing started in {ddir}")
    if not ok:
        raise ServiceError("some services are down; run start again")
    report(ddir, state, args.json)


def cmd_stop(args: argparse.Namespace) -> None:
    ddir = Path(args.dir).resolve()
    if not ddir.is_dir():
        log(f"nothing to stop in {ddir}")
        return
    with file_lock(ddir / ".lock"):
        state = load_state(ddir)
        # Redis first: it is quick, and the broker's shutdown takes seconds.
        ours = [(state.get("redis"), REDIS_MARKER, "Redis"),
                (state.get("kafka"), KAFKA_MAIN, "Kafka")]
        running = [(e, m, n) for e, m, n in ours if e and pid_alive(e["pid"], m)]
        for entry, marker, name in running:
            terminate(entry["pid"], marker, name)
        for name in ("state.json", "env.sh"):
            with contextlib.suppress(FileNotFoundError):
                (ddir / name).unlink()
        log("stopped" if running else f"nothing was running from {ddir}")


def cmd_fetch(args: argparse.Namespace) -> None:
    libs = fetch_kafka()
    log(f"Kafka {KAFKA_VERSION} classpath: {libs}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    start = sub.add_parser("start", help="start (or reuse) Kafka and Redis")
    start.add_argument("--dir", default=str(DEFAULT_DIR), help="state/run folder")
    start.add_argument("--kafka-port", type=int, help="default: 9092 if free, else any")
    start.add_argument("--redis-port", type=int, help="default: 6379 if free, else any")
    start.add_argument("--json", action="store_true", help="print one JSON line instead")
    start.set_defaults(func=cmd_start)

    status = sub.add_parser("status", help="report what DIR runs")
    status.add_argument("--dir", default=str(DEFAULT_DIR))
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    stop = sub.add_parser("stop", help="stop what DIR started")
    stop.add_argument("--dir", default=str(DEFAULT_DIR))
    stop.set_defaults(func=cmd_stop)

    fetch = sub.add_parser("fetch", help=f"only download Kafka {KAFKA_VERSION}")
    fetch.set_defaults(func=cmd_fetch)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ServiceError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
