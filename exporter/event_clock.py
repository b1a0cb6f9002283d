"""The clock that worker silence is measured on: it stands still while the exporter is cut off.

A worker counts as down when nothing was heard from it for its heartbeat timeout. While the
events consumer is disconnected the exporter hears nobody, and that silence says nothing about
the workers: measured on the wall clock, every worker would go down together, paging for a
fleet-wide outage that is the exporter's own. On this clock the disconnected time does not pass,
so liveness (and the purging of gone hosts) stays as it was at the cut and resumes where it
stopped once the consumer is back.

A connection that dies without being closed is only noticed some seconds later (see
``--broker-heartbeat``), so the clock can be stopped as of when the silence began.
"""
from __future__ import annotations

import time
from collections.abc import Callable


class EventClock:
    """Monotonic seconds, minus the time spent disconnected; ``stop``/``start`` around outages.

    Only the events thread stops and starts it; any thread reads it. The state is one tuple,
    replaced whole, so a reader never sees half an update.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        # (seconds it stood still so far, monotonic time when it stopped or None while running)
        self._state: tuple[float, float | None] = (0.0, None)
        self._started_at = monotonic()

    def __call__(self) -> float:
        stood_still, stopped_at = self._state
        return (self._monotonic() if stopped_at is None else stopped_at) - stood_still

    def stop(self, since: float | None = None) -> None:
        """Stand still from now, or from ``since`` (monotonic) when the outage began earlier."""
        stood_still, stopped_at = self._state
        if stopped_at is None:
            now = self._monotonic()
            at = now if since is None else min(now, max(since, self._started_at))
            self._state = (stood_still, at)

    def start(self) -> None:
        stood_still, stopped_at = self._state
        if stopped_at is not None:
            self._started_at = self._monotonic()
            self._state = (stood_still + self._started_at - stopped_at, None)
