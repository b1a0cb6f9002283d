"""Synchronisation by condition, never by sleeping a fixed time (the demo's poller, shared, and an
asynchronous one for tests inside an event loop)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Callable, TypeVar

from demo.polling import Timeout, wait_for

__all__ = ["Timeout", "wait_for", "wait_for_async"]

T = TypeVar("T")


async def wait_for_async(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """:func:`wait_for` for a coroutine probe, inside a running event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout:.1f}s waiting for {what}; last probe gave {value!r}")
        await asyncio.sleep(interval)
