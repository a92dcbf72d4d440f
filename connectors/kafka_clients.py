"""Starting aiokafka clients so that a broker that cannot be reached leaves nothing open.

aiokafka's ``start()`` raises when no broker answers but leaves the client's connections and
tasks behind ("Unclosed AIOKafkaConsumer" at exit); every client here is started through
``start`` instead, which closes it before the error goes up to the caller (and, for the command
line, to one clear line).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


async def start(client: Any) -> None:
    """``client.start()``, closing the client if that fails (producers and consumers close with
    ``stop()``, the admin client with ``close()``)."""
    close: Callable[[], Awaitable[None]] = getattr(client, "stop", None) or client.close
    try:
        await client.start()
    except BaseException:
        await close()
        raise
