"""The one way tests wait: poll a condition until it holds, with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = 0.05,
    *,
    detail: Callable[[], str] | None = None,
) -> T:
    """Return the first truthy value ``condition()`` gives (awaited if it is a coroutine).

    Fails with ``what`` and the last value seen once ``timeout`` seconds have passed, followed by
    ``detail()`` if given: called only then, it says what a failure needs to be understood (a
    process's log tail, the last messages read) as it is at the deadline. Exceptions from the
    condition are not swallowed, so a broken probe fails at once rather than timing out, and a
    condition that finds it can no longer hold (its process died) raises ``AssertionError`` itself.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            message = f"{what}: not reached in {timeout} s (last value: {value!r})"
            raise AssertionError(f"{message}\n{detail()}" if detail is not None else message)
        await asyncio.sleep(interval)
