"""Run each poller on its own interval in its own thread, and record how each poll went.

One thread per poller so that a slow or stuck source (an inspection waiting on a broker that went
away) never delays the others; the scrape reads only what they last recorded.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from .poll_results import PollResults

log = logging.getLogger(__name__)


class Poller(Protocol):
    name: str

    def poll(self) -> None: ...


def run_periodically(poller: Poller, interval: float, polls: PollResults | None,
                     stop: threading.Event) -> None:
    """Poll until ``stop``; ``polls`` receives the health of each round (None: not a source)."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            poller.poll()
            ok = True
        except Exception as exc:  # noqa: BLE001 - a failed round is recorded, the next one retries
            log.warning("%s: poll failed (%s: %s)", poller.name, type(exc).__name__, exc)
            ok = False
        elapsed = time.monotonic() - started
        if polls is not None:
            polls.record(poller.name, ok, elapsed)
        stop.wait(max(0.0, interval - elapsed))
