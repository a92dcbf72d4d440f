"""The one way tests wait: poll a condition until it holds, with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    condition: Callable[[], T | Awaitable[T]], timeout: float = 30.0, what: str = "condition", interval: float = 0.05
) -> T:
    """Return the first truthy value ``condition()`` gives (awaited if it is a coroutine).

    Fails with ``what`` and the last value seen once ``timeout`` seconds have passed; exceptions
    from the condition are not swallowed, so a broken probe fails at once rather than timing out.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout} s (last value: {value!r})")
        await asyncio.sleep(interval)
