"""Keep an event consumer connected: reconnect with capped exponential backoff, never give up.

While the broker is away the exporter keeps serving what it knew, with
``celery_exporter_broker_connected 0`` and the liveness clock stopped; it never exits because of
the broker.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .event_clock import EventClock
from .poll_results import PollResults

log = logging.getLogger(__name__)

FIRST_DELAY = 0.1

# A consumer session: connects, calls on_connected once subscribed, then consumes until the
# connection fails (raises) or ``stop`` is set (returns).
Session = Callable[[Callable[[], None]], None]


class SilentConnection(ConnectionError):
    """Raised by a session whose connection went silent and did not answer a probe: it has been
    dead since ``since`` (time.monotonic()), not only since it was noticed."""

    def __init__(self, message: str, since: float) -> None:
        super().__init__(message)
        self.since = since


def run_with_reconnect(source: str, session: Session, polls: PollResults, clock: EventClock,
                       stop: threading.Event, max_delay: float) -> None:
    delay = FIRST_DELAY

    def on_connected() -> None:
        nonlocal delay
        delay = FIRST_DELAY
        with polls.lock:
            polls.broker_connected = True
        clock.start()
        polls.record(source, True, 0.0)
        log.info("%s: connected to the broker", source)

    while not stop.is_set():
        started = time.monotonic()
        outage_began = None
        try:
            session(on_connected)
        except Exception as exc:  # noqa: BLE001 - any failure means: reconnect later
            log.warning("%s: broker connection lost (%s: %s); retrying in %.1fs",
                        source, type(exc).__name__, exc, delay)
            polls.record(source, False, time.monotonic() - started)
            if isinstance(exc, SilentConnection):
                outage_began = exc.since
        clock.stop(outage_began)
        with polls.lock:
            polls.broker_connected = False
        if stop.wait(delay):
            return
        delay = min(delay * 2, max_delay)
