"""Starting aiokafka clients so that a broker that cannot be reached leaves nothing open.

aiokafka's ``start()`` raises when no broker answers but leaves the client's connections and
tasks behind ("Unclosed AIOKafkaConsumer" at exit); every client here is started through
``start`` instead, which closes it before the error goes up to the caller (and, for the command
line, to one clear line).
"""

from __future__ import annotations

from typing import Protocol


class _Client(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def start(client: _Client) -> None:
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise
