"""Worker inspection: pool sizes, prefetch, memory and consumed queues, on its own interval.

``inspect()`` without ``limit`` waits its whole timeout even when every worker answered at once;
with ``limit=N`` it returns as soon as the N workers we expect have answered. So rounds ask for
the workers known to be up, and every ``discovery_interval`` a round waits the full timeout to
find workers that have not announced themselves by events.
"""
from __future__ import annotations

from celery import Celery

from .aggregates import Aggregates
from .liveness import Liveness
from .poll_results import PollResults, WorkerStats

KIB = 1024


def _int(value: object) -> int | None:
    return value if type(value) is int else None


def worker_stats(reply: object) -> WorkerStats:
    """The metrics in one ``inspect stats`` reply; a field of the wrong shape is left out."""
    if not isinstance(reply, dict):
        return WorkerStats()
    pool = reply.get("pool") if isinstance(reply.get("pool"), dict) else {}
    processes = pool.get("processes")
    autoscaler = reply.get("autoscaler") if isinstance(reply.get("autoscaler"), dict) else {}
    rusage = reply.get("rusage") if isinstance(reply.get("rusage"), dict) else {}
    maxrss = _int(rusage.get("maxrss"))
    return WorkerStats(
        pool_processes=len(processes) if isinstance(processes, list) else None,
        max_concurrency=_int(pool.get("max-concurrency")),
        autoscaler_min=_int(autoscaler.get("min")),
        autoscaler_max=_int(autoscaler.get("max")),
        prefetch_count=_int(reply.get("prefetch_count")),
        max_rss_bytes=maxrss * KIB if maxrss is not None else None,
    )


def consumed_queues(reply: object) -> tuple[str, ...]:
    """Queue names from one ``inspect active_queues`` reply."""
    if not isinstance(reply, list):
        return ()
    return tuple(q["name"] for q in reply if isinstance(q, dict) and isinstance(q.get("name"), str))


class WorkerInspection:
    name = "inspection"

    def __init__(self, app: Celery, aggregates: Aggregates, polls: PollResults, liveness: Liveness,
                 timeout: float, discovery_interval: float, enable_events: bool) -> None:
        self.app = app
        self.aggregates = aggregates
        self.polls = polls
        self.liveness = liveness
        self.timeout = timeout
        self.discovery_interval = discovery_interval
        self.enable_events = enable_events
        self._last_full_round = float("-inf")

    def _expected(self, now: float) -> int:
        """How many workers should answer: those up by events or by the previous round."""
        with self.aggregates.lock:
            workers, last_heard = self.aggregates.copy_workers()
        with self.polls.lock:
            answered_at = dict(self.polls.answered_at)
        hosts = set(workers) | set(answered_at)
        return sum(1 for h in hosts
                   if self.liveness.is_up(workers.get(h), last_heard.get(h), answered_at.get(h), now))

    def poll(self) -> None:
        now = self.liveness.clock()
        expected = self._expected(now)
        full = expected == 0 or now - self._last_full_round >= self.discovery_interval
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            inspect = self.app.control.inspect(timeout=self.timeout, limit=None if full else expected,
                                               connection=conn)
            stats = inspect.stats() or {}
            queues = inspect.active_queues() or {}
            if self.enable_events:
                self.app.control.enable_events(connection=conn)
        if full:
            self._last_full_round = now
        with self.polls.lock:
            for hostname, reply in stats.items():
                self.polls.stats[hostname] = worker_stats(reply)
                # A reply proves the worker was alive when asked, not when the round ended
                # (a round lasts up to two timeouts).
                self.polls.answered_at[hostname] = now
            for hostname, reply in queues.items():
                self.polls.note_consumed(hostname, consumed_queues(reply))
            single = {h: qs[0] for h, qs in self.polls.consumed.items() if len(qs) == 1}
        with self.aggregates.lock:
            self.aggregates.single_queues = single
