"""Synchronisation by condition, never by sleeping a fixed time."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    pass


def wait_for(
    probe: Callable[[], T],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
    fatal: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``probe`` until it returns a truthy value and return that value.

    Exceptions from the probe count as "not yet" (a broker that is still starting refuses
    connections); the last one is reported if the deadline passes, so a failure says why.
    Exceptions of the ``fatal`` types end the wait at once: waiting longer cannot help.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except fatal:
            raise
        except Exception as exc:  # noqa: BLE001 - reported below if it never succeeds
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout:.1f}s waiting for {what}; last probe gave {last!r}")
        time.sleep(interval)
