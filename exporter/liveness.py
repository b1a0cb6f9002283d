"""When a worker counts as up, and when a gone host is forgotten.

A worker is up when it was heard from (any event, or an inspection reply) within its timeout and
its last word was not worker-offline. Silence is measured on ``clock``, which stands still while
the events consumer is disconnected (``event_clock``). The timeout is the heartbeat timeout for workers that send
events; a worker that never sent one is only heard by inspection, so it gets at least two
inspection rounds. A host (worker or task producer) that is not up and was not heard from for
``purge_after`` seconds loses every series.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .aggregates import WorkerEvents

# Celery workers announce their heartbeat period as `freq`; "auto" waits this many periods.
MISSED_HEARTBEATS = 3
MAX_AUTO_HEARTBEAT_TIMEOUT = 60.0
DEFAULT_HEARTBEAT_FREQ = 2.0


def silence_allowed(heartbeat_timeout: float | None, freq: float | None) -> float:
    """Seconds of silence after which a worker counts as down (``heartbeat_timeout`` None: auto).

    "auto" follows the period the worker announced, so a worker beating every 2 s is declared
    down after 6 s, yet never later than a minute whatever it announced.
    """
    if heartbeat_timeout is not None:
        return heartbeat_timeout
    return min(MISSED_HEARTBEATS * (freq or DEFAULT_HEARTBEAT_FREQ), MAX_AUTO_HEARTBEAT_TIMEOUT)


def _latest(*times: float | None) -> float:
    return max((t for t in times if t is not None), default=float("-inf"))


@dataclass(frozen=True)
class Liveness:
    heartbeat_timeout: float | None
    inspect_interval: float
    inspect_timeout: float
    purge_after: float
    # When hosts were heard from is recorded on this clock, and their silence measured on it.
    clock: Callable[[], float] = time.monotonic

    def is_up(self, worker: WorkerEvents | None, last_heard: float | None,
              answered_at: float | None, now: float) -> bool:
        if worker is not None:
            if not worker.online:
                return False
            timeout = silence_allowed(self.heartbeat_timeout, worker.freq)
        else:
            timeout = max(silence_allowed(self.heartbeat_timeout, None),
                          2 * self.inspect_interval + self.inspect_timeout)
        return now - _latest(last_heard, answered_at) <= timeout

    def gone(self, workers: dict[str, WorkerEvents], last_heard: dict[str, float],
             answered_at: dict[str, float], now: float) -> set[str]:
        """Hosts to purge: down, and silent for longer than ``purge_after``."""
        gone = set()
        for hostname in set(last_heard) | set(answered_at):
            heard = last_heard.get(hostname)
            answered = answered_at.get(hostname)
            if self.is_up(workers.get(hostname), heard, answered, now):
                continue
            if now - _latest(heard, answered) > self.purge_after:
                gone.add(hostname)
        return gone
