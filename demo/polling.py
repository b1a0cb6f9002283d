"""Synchronisation by condition, never by sleeping a fixed time."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    pass


class GaveUp(RuntimeError):
    """Raised by a probe when waiting longer cannot help (the process waited for has exited):
    :func:`wait_for` lets it through at once instead of polling on until its deadline."""


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
    connections), except :class:`GaveUp` and the ``fatal`` types, which end the wait at once;
    the last one is reported if the deadline passes, so a failure says why.
    """
    stop_at_once = (GaveUp, *fatal)
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except stop_at_once:
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
