"""The story the demo tells, as milestones reached in order, from what it observes.

Backlog → the backlog alert fires → the actuator grows the pool → the backlog drains → the alert
resolves → the pool shrinks back to its starting size. Kept apart from the display and the
processes so that both display modes print the same story and a test can read it.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .observe import Observation

BACKLOG_ALERT = "CeleryQueueBacklog"


@dataclass
class Progress:
    """Milestones in seconds since the burst; ``update`` returns the ones just reached."""

    initial_pool: int
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    fired: float | None = None
    grown: float | None = None
    drained: float | None = None
    resolved: float | None = None
    shrunk: float | None = None
    peak_pool: int = 0

    def __post_init__(self) -> None:
        self.started = self.clock()
        self.peak_pool = self.initial_pool

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    @property
    def done(self) -> bool:
        return self.shrunk is not None

    def update(self, seen: Observation) -> list[str]:
        now = round(self.elapsed, 1)
        reached: list[str] = []
        if seen.pool_size is not None:
            self.peak_pool = max(self.peak_pool, seen.pool_size)
        if self.fired is None and BACKLOG_ALERT in seen.firing:
            self.fired = now
            reached.append(f"{BACKLOG_ALERT} fired after {now:.1f} s")
        if self.grown is None and seen.pool_size is not None and seen.pool_size > self.initial_pool:
            self.grown = now
            reached.append(f"pool grew from {self.initial_pool} to {seen.pool_size} processes "
                           f"{now:.1f} s after the burst")
        if self.fired is not None and self.drained is None and seen.queue_length == 0:
            self.drained = now
            reached.append(f"backlog drained after {now:.1f} s")
        if self.fired is not None and self.resolved is None and BACKLOG_ALERT not in seen.firing:
            self.resolved = now
            reached.append(f"{BACKLOG_ALERT} resolved after {now:.1f} s")
        if (self.grown is not None and self.resolved is not None and self.shrunk is None
                and seen.pool_size == self.initial_pool):
            self.shrunk = now
            reached.append(f"pool shrank back to {self.initial_pool} processes after {now:.1f} s "
                           f"(peak {self.peak_pool})")
        return reached
