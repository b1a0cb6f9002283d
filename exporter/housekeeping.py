"""Forget hosts that are gone: every series of a host down and silent for ``purge_after``.

Kept long enough (30 min by default) for a ``for: 10m`` alert on ``celery_worker_up == 0`` to fire.
Queues no worker consumed for ``purge_after`` are forgotten too (those named by --queues stay):
until then a queue whose last consumer was cancelled keeps its depth, so its messages can alert.
"""
from __future__ import annotations

import logging

from .aggregates import Aggregates
from .liveness import Liveness
from .poll_results import PollResults

log = logging.getLogger(__name__)


class Housekeeping:
    name = "housekeeping"

    def __init__(self, aggregates: Aggregates, polls: PollResults, liveness: Liveness) -> None:
        self.aggregates = aggregates
        self.polls = polls
        self.liveness = liveness

    def poll(self) -> None:
        forgotten = self.polls.forget_queues(self.liveness.purge_after)
        if forgotten:
            log.info("forgetting queues no worker consumed for %.0f s: %s", self.liveness.purge_after,
                     ", ".join(sorted(forgotten)))
        with self.aggregates.lock:
            workers, last_heard = self.aggregates.copy_workers()
        with self.polls.lock:
            answered_at = dict(self.polls.answered_at)
        gone = self.liveness.gone(workers, last_heard, answered_at, self.liveness.clock())
        if not gone:
            return
        log.info("purging series of gone hosts: %s", ", ".join(sorted(gone)))
        with self.aggregates.lock:
            self.aggregates.purge_hostnames(gone)
        self.polls.purge_hostnames(gone)
