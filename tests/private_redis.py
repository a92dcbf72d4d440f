"""A redis-server of one test's own, to stop, kill or pause and start again on the same port: for the
Redis projection's outage tests (tests/connectors and tests/streams).

``keep_data=True`` makes it keep what it holds across a restart (an append-only file, each write
fsynced); otherwise it keeps nothing on disk and comes back empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from pathlib import Path

from tests.eventually import eventually
from tests.ports import free_port


class PrivateRedis:
    """A ``redis-server`` subprocess on 127.0.0.1, its files and its log in ``folder``."""

    def __init__(self, folder: Path, keep_data: bool = False) -> None:
        self.folder = folder
        self.keep_data = keep_data
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.folder / "redis-server.log"

    async def start(self, timeout: float = 30) -> None:
        """Start, on the same port as before, and return once it answers PING (having loaded its
        data, if it keeps any); fails with its log's tail if it exits or does not answer."""
        self.folder.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.keep_data else ["--appendonly", "no"]
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [server, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", "",
                 *persistence],
                stdout=log, stderr=subprocess.STDOUT,
            )
        process = self.process

        async def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"redis-server exited with {process.returncode}:\n{self.log_tail()}")
            return await _pong(self.port)

        await eventually(answers, timeout, what=f"redis-server on port {self.port} answers PING", interval=0.02,
                         detail=self.log_tail)

    def stop(self) -> None:
        """SIGTERM: it writes what it keeps and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL, as a crash would stop it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


async def _pong(port: int) -> bool:
    """Whether the server on ``port`` answers PING (not ``-LOADING``, as while it reads its data)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 1)).startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
