"""Validated Celery events -> counters, histograms and worker liveness in plain dicts.

The event consumer thread writes here, and so do inspection (``single_queues``) and housekeeping
(``purge_hostnames``), each holding ``lock``; a scrape copies what it needs under the same lock
(``copy_tasks``, ``copy_workers``) and renders outside it.

Memory depends on workers x task names x queues, never on the number of task ids: started,
succeeded and failed events carry neither the task name nor its queue, so a bounded map of the
tasks in flight (uuid -> name, queue, wait base, start time) bridges from task-sent/received to
the terminal event; it evicts the oldest when full, and at its terminal state a task moves to a
small fixed-size map of recently finished ones, for events that arrive late.
"""
from __future__ import annotations

import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from typing import Any

from .decode import (
    Event, TaskFailed, TaskReceived, TaskRejected, TaskRetried, TaskRevoked, TaskSent, TaskStarted,
    TaskSucceeded, WorkerEvent, WorkerHeartbeat, WorkerOffline, WorkerOnline,
)

UNKNOWN = "unknown"
# The hostname of task-sent series by default: producers' node names (``gen<pid>@host``) change
# with every process, and each would hold series and liveness entries of its own.
GENERIC_HOSTNAME = "generic"
# The exception label of failures beyond a series' cap on distinct exception labels.
OTHER_EXCEPTION = "other"

# Index of each task state in TaskSeries.counts; failed is counted by exception apart.
STATES = ("sent", "received", "started", "succeeded", "retried", "rejected", "revoked")
SENT, RECEIVED, STARTED, SUCCEEDED, RETRIED, REJECTED, REVOKED = range(len(STATES))

# Task names whose allow/deny verdict is cached; past this the cache starts afresh, so a flood of
# distinct names cannot grow it without bound.
_NAME_CACHE_LIMIT = 10_000
# Finished tasks remembered for events that arrive after the terminal one: each prefork pool
# process flushes its own event buffer, so a task-retried can follow the retry's task-succeeded.
RECENTLY_FINISHED = 10_000
# A task revoked on receipt sends only task-revoked, which has no name, and over AMQP it can
# overtake the producer's task-sent (separate connections): a task-revoked of a task never seen
# waits this long (processor clock) for its task-sent before it is counted under "unknown", at the
# next event (workers' heartbeats keep them coming). At most ORPHANS_MAX wait at once.
ORPHAN_GRACE = 2.0
ORPHANS_MAX = 1_000
# An exception label longer than this is cut: the label is meant to be a class name.
_EXCEPTION_LABEL_MAX = 120


def escape_label_value(value: str) -> str:
    """A label value as the text exposition format needs it inside double quotes."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def task_labels(hostname: str, name: str, queue: str) -> str:
    return (f'name="{escape_label_value(name)}",hostname="{escape_label_value(hostname)}",'
            f'queue_name="{escape_label_value(queue)}"')


_REJECT_REPR = "reject requeue="


def exception_label(exception: object) -> str:
    """The class name from an exception repr: ``KeyError('x')`` -> ``KeyError``.

    The message after the parenthesis would make the label unbounded.
    """
    if type(exception) is not str or not exception:
        return UNKNOWN
    if exception.startswith(_REJECT_REPR):
        # Celery (5.7 here) sends task-failed for Reject(requeue=False), whose repr is
        # ``reject requeue=False: <reason>``: the reason must not become the label.
        return "Reject"
    head = exception.split("(", 1)[0].split("\n", 1)[0].strip()
    return head[:_EXCEPTION_LABEL_MAX] or UNKNOWN


def eta_timestamp(eta: str) -> float | None:
    """POSIX time of an ``eta`` (ISO 8601), or None when it does not parse.

    Celery sends an eta with its UTC offset, except the naive datetime a caller passed itself as
    ``eta=``, which workers read in the app's timezone: UTC unless the app turns ``enable_utc``
    off, so UTC here, whatever the exporter's own timezone. Python 3.10 does not read a ``Z``.
    """
    try:
        when = datetime.fromisoformat(eta[:-1] + "+00:00" if eta.endswith("Z") else eta)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def wait_base(timestamp: float, eta: str | None) -> float:
    """When a task's wait in the queue began: when it was sent or received, or its eta if later
    (a task with a countdown is not waiting for a worker before its eta)."""
    if eta is not None:
        eta_at = eta_timestamp(eta)
        if eta_at is not None and eta_at > timestamp:
            return eta_at
    return timestamp


class TaskSeries:
    """Every counter and histogram of one (hostname, task name, queue)."""

    __slots__ = ("labels", "counts", "failed", "runtime", "runtime_sum", "wait", "wait_sum")

    def __init__(self, labels: str, runtime_buckets: int, wait_buckets: int) -> None:
        self.labels = labels
        self.counts = [0] * len(STATES)
        self.failed: dict[str, int] = {}
        # One slot per bucket bound plus +Inf; not cumulative (that is done at scrape time).
        self.runtime = [0] * (runtime_buckets + 1)
        self.runtime_sum = 0.0
        self.wait = [0] * (wait_buckets + 1)
        self.wait_sum = 0.0


class TaskCopy:
    """A consistent copy of a TaskSeries for rendering outside the lock."""

    __slots__ = ("labels", "counts", "failed", "runtime", "runtime_sum", "wait", "wait_sum")

    def __init__(self, series: TaskSeries) -> None:
        self.labels = series.labels
        self.counts = series.counts[:]
        self.failed = tuple(series.failed.items())
        self.runtime = series.runtime[:]
        self.runtime_sum = series.runtime_sum
        self.wait = series.wait[:]
        self.wait_sum = series.wait_sum


class WorkerEvents:
    """What worker-online/heartbeat/offline events said about one worker."""

    __slots__ = ("online", "freq", "active", "last_heartbeat", "first_processed", "processed",
                 "task_events")

    def __init__(self) -> None:
        self.online = True
        self.freq: float | None = None
        self.active: int | None = None
        self.last_heartbeat: float | None = None
        # Heartbeats count the tasks a worker processed; if that grows while no task-received
        # comes from it, the worker runs without task events (no -E).
        self.first_processed: int | None = None
        self.processed: int | None = None
        self.task_events = False

    @property
    def without_task_events(self) -> bool:
        return (not self.task_events and self.processed is not None
                and self.first_processed is not None and self.processed > self.first_processed)

    def copy(self) -> WorkerEvents:
        other = WorkerEvents()
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        return other


class Aggregates:
    def __init__(
        self,
        runtime_buckets: Iterable[float],
        queue_wait_buckets: Iterable[float],
        *,
        task_allow: Iterable[str] = (),
        task_deny: Iterable[str] = (),
        max_series: int = 10_000,
        max_exception_labels: int = 20,
        max_tasks_in_flight: int = 50_000,
        sent_hostname: str | None = GENERIC_HOSTNAME,
    ) -> None:
        """``sent_hostname``: the hostname label of every task-sent (None: the producer's own)."""
        self.lock = threading.Lock()
        self.runtime_bounds = tuple(sorted(runtime_buckets))
        self.wait_bounds = tuple(sorted(queue_wait_buckets))
        self.task_allow = tuple(task_allow)
        self.task_deny = tuple(task_deny)
        self.max_series = max_series
        self.max_exception_labels = max_exception_labels
        self.max_tasks_in_flight = max_tasks_in_flight
        self.sent_hostname = sent_hostname

        self.series: dict[tuple[str, str, str], TaskSeries] = {}
        self.in_flight: OrderedDict[str, tuple[str, str, float | None, float | None]] = OrderedDict()
        self.finished: OrderedDict[str, tuple[str, str, float | None, float | None]] = OrderedDict()
        # uuid -> (hostname, queue, when parked) of a task-revoked waiting for its task-sent.
        self.orphans: OrderedDict[str, tuple[str, str, float]] = OrderedDict()
        self.workers: dict[str, WorkerEvents] = {}
        # hostname -> the processor's clock (EventClock) at the last event from it: liveness and
        # purging.
        self.last_heard: dict[str, float] = {}
        # hostname -> the one queue a worker consumes, from inspection: the queue of a task whose
        # task-sent was never seen.
        self.single_queues: dict[str, str] = {}

        self.series_dropped = 0
        self.exceptions_folded = 0
        self.in_flight_evicted = 0
        self._name_allowed: dict[str, bool] = {}
        self._handlers: dict[type[Event], Callable[[Any, str], None]] = {
            TaskSent: self._sent,
            TaskReceived: self._received,
            TaskStarted: self._started,
            TaskSucceeded: self._succeeded,
            TaskFailed: self._failed,
            TaskRetried: self._retried,
            TaskRejected: self._rejected,
            TaskRevoked: self._revoked,
            WorkerOnline: self._worker_beat,
            WorkerHeartbeat: self._worker_beat,
            WorkerOffline: self._worker_offline,
        }

    # The hot path. The caller holds ``lock``; events come validated from ``decode``.

    def apply(self, event: Event, now: float) -> None:
        if self.orphans:
            self._count_orphans(now - ORPHAN_GRACE)
        hostname = event.hostname
        kind = type(event)
        if kind is TaskSent and self.sent_hostname is not None:
            hostname = self.sent_hostname
        self.last_heard[hostname] = now
        if kind is TaskRevoked and event.uuid not in self.in_flight and event.uuid not in self.finished:
            self.orphans[event.uuid] = (hostname, self.single_queues.get(hostname, UNKNOWN), now)
            if len(self.orphans) > ORPHANS_MAX:
                self._count_orphans(float("inf"), 1)
            return
        self._handlers[kind](event, hostname)

    def _count_orphans(self, parked_before: float, at_most: int = ORPHANS_MAX) -> None:
        """Count the task-revoked parked before ``parked_before`` whose task-sent never came."""
        orphans = self.orphans
        while orphans and at_most:
            uuid = next(iter(orphans))
            hostname, queue, parked_at = orphans[uuid]
            if parked_at >= parked_before:
                return
            del orphans[uuid]
            at_most -= 1
            self._count(hostname, UNKNOWN, queue, REVOKED)

    def _sent(self, event: TaskSent, hostname: str) -> None:
        orphan = self.orphans.pop(event.uuid, None) if self.orphans else None
        if orphan is not None:
            # Revoked already (its task-revoked came first): counted now, under its name and queue.
            self._sent(event, hostname)
            name, queue, _ = self._finish(event.uuid, orphan[0])
            self._count(orphan[0], name, queue, REVOKED)
            return
        name = event.name
        queue = event.queue or event.routing_key or UNKNOWN
        entry = self.in_flight.get(event.uuid)
        if entry is not None and not event.retries:
            # The client publishes task-sent after the task itself, so a busy worker's received
            # (even started) can come first. That attempt's events are already counted under the
            # queue the entry holds: keep it, so one task's counts never split across two queue
            # labels; only the wait now starts at the publication.
            if entry[3] is None:
                self._track(event.uuid, (entry[0], entry[1], wait_base(event.timestamp, event.eta), None))
        elif entry is None and (late := self.finished.get(event.uuid)) is not None and late[3] is not None \
                and event.timestamp <= late[3]:
            # Sent before the last attempt started, yet it comes after the task's end (over AMQP a
            # retry's task-sent, from the pool process that retried, can come after the next
            # attempt's events): counted, and not put in flight again.
            pass
        else:
            self._track(event.uuid, (name, queue, wait_base(event.timestamp, event.eta), None))
        self._count(hostname, name, queue, SENT)

    def _received(self, event: TaskReceived, hostname: str) -> None:
        name = event.name
        uuid = event.uuid
        entry = self.in_flight.get(uuid)
        if entry is None and (late := self.finished.get(uuid)) is not None and late[3] is not None \
                and event.timestamp <= late[3]:
            # Received before that attempt started, yet it comes after the task's end: over AMQP the
            # worker's main process and its pool processes publish on connections of their own.
            self._count(hostname, name, late[1], RECEIVED)
            worker = self.workers.get(hostname)
            if worker is not None:
                worker.task_events = True
            return
        if entry is None:
            # No task-sent (Celery's default): the wait is counted from the receipt, or the eta.
            queue = self.single_queues.get(hostname, UNKNOWN)
            self._track(uuid, (name, queue, wait_base(event.timestamp, event.eta), None))
        elif entry[3] is not None:
            # The task already started once: this is a retry or a redelivery without a task-sent
            # of its own, whose wait begins now (or at its countdown's eta), not at the first one.
            queue = entry[1]
            self._track(uuid, (name, queue, wait_base(event.timestamp, event.eta), None))
        else:
            queue = entry[1]
        self._count(hostname, name, queue, RECEIVED)
        worker = self.workers.get(hostname)
        if worker is not None:
            worker.task_events = True

    def _started(self, event: TaskStarted, hostname: str) -> None:
        uuid = event.uuid
        started_at = event.timestamp
        entry = self.in_flight.get(uuid)
        if entry is None:
            late = self.finished.get(uuid)
            if late is None:
                name, queue, base = UNKNOWN, self.single_queues.get(hostname, UNKNOWN), None
                self._track(uuid, (name, queue, None, started_at))
            else:
                # Flushed by its pool process after the task's end: not in flight any more.
                name, queue, base = late[0], late[1], late[2]
        else:
            name, queue, base = entry[0], entry[1], entry[2]
            self.in_flight[uuid] = (name, queue, base, started_at)
        series = self._count(hostname, name, queue, STARTED)
        if series is not None and base is not None:
            wait = started_at - base
            if wait < 0.0:
                wait = 0.0
            series.wait[bisect_left(self.wait_bounds, wait)] += 1
            series.wait_sum += wait

    def _succeeded(self, event: TaskSucceeded, hostname: str) -> None:
        name, queue, _ = self._finish(event.uuid, hostname)
        series = self._count(hostname, name, queue, SUCCEEDED)
        runtime = event.runtime
        if series is not None and runtime is not None:
            self._observe_runtime(series, runtime)

    def _failed(self, event: TaskFailed, hostname: str) -> None:
        name, queue, started_at = self._finish(event.uuid, hostname)
        series = self._series(hostname, name, queue)
        if series is None:
            return
        label = exception_label(event.exception)
        failed = series.failed
        count = failed.get(label)
        if count is None and len(failed) >= self.max_exception_labels:
            # An exception repr need not be a class name (a custom __repr__, an object address):
            # past the cap, failures are still counted, under one label.
            self.exceptions_folded += 1
            label = OTHER_EXCEPTION
            count = failed.get(label)
        failed[label] = (count or 0) + 1
        if started_at is not None:
            self._observe_runtime(series, event.timestamp - started_at)

    def _retried(self, event: TaskRetried, hostname: str) -> None:
        uuid = event.uuid
        entry = self.in_flight.get(uuid) or self.finished.get(uuid)
        if entry is None:
            self._count(hostname, UNKNOWN, self.single_queues.get(hostname, UNKNOWN), RETRIED)
        else:
            self._count(hostname, entry[0], entry[1], RETRIED)

    def _rejected(self, event: TaskRejected, hostname: str) -> None:
        name, queue, _ = self._finish(event.uuid, hostname)
        self._count(hostname, name, queue, REJECTED)

    def _revoked(self, event: TaskRevoked, hostname: str) -> None:
        name, queue, _ = self._finish(event.uuid, hostname)
        self._count(hostname, name, queue, REVOKED)

    def _worker_beat(self, event: WorkerEvent, hostname: str) -> None:
        worker = self.workers.get(hostname)
        if worker is None:
            worker = self.workers[hostname] = WorkerEvents()
        worker.online = True
        freq = event.freq
        if freq is not None:
            worker.freq = freq
        active = event.active
        if active is not None:
            worker.active = active
        processed = event.processed
        if processed is not None:
            if worker.first_processed is None:
                worker.first_processed = processed
            worker.processed = processed
        worker.last_heartbeat = event.timestamp

    def _worker_offline(self, event: WorkerOffline, hostname: str) -> None:
        self._worker_beat(event, hostname)
        self.workers[hostname].online = False

    def _track(self, uuid: str, entry: tuple[str, str, float | None, float | None]) -> None:
        in_flight = self.in_flight
        if uuid in in_flight:
            # Sent or received again (a retry): the newest now, the last to be evicted.
            in_flight[uuid] = entry
            in_flight.move_to_end(uuid)
            return
        in_flight[uuid] = entry
        if len(in_flight) > self.max_tasks_in_flight:
            in_flight.popitem(last=False)
            self.in_flight_evicted += 1

    def _finish(self, uuid: str, hostname: str) -> tuple[str, str, float | None]:
        """Forget a task at its terminal state: (name, queue, started timestamp)."""
        entry = self.in_flight.pop(uuid, None)
        if entry is None:
            entry = self.finished.get(uuid)
            if entry is None:
                return UNKNOWN, self.single_queues.get(hostname, UNKNOWN), None
        else:
            finished = self.finished
            finished[uuid] = entry
            if len(finished) > RECENTLY_FINISHED:
                finished.popitem(last=False)
        return entry[0], entry[1], entry[3]

    def _observe_runtime(self, series: TaskSeries, runtime: float) -> None:
        if runtime < 0.0:
            runtime = 0.0
        series.runtime[bisect_left(self.runtime_bounds, runtime)] += 1
        series.runtime_sum += runtime

    def _count(self, hostname: str, name: str, queue: str, state: int) -> TaskSeries | None:
        series = self.series.get((hostname, name, queue))
        if series is None:
            series = self._new_series(hostname, name, queue)
            if series is None:
                return None
        series.counts[state] += 1
        return series

    def _series(self, hostname: str, name: str, queue: str) -> TaskSeries | None:
        series = self.series.get((hostname, name, queue))
        if series is None:
            return self._new_series(hostname, name, queue)
        return series

    def _new_series(self, hostname: str, name: str, queue: str) -> TaskSeries | None:
        if not self._allowed(name):
            return None
        if len(self.series) >= self.max_series:
            self.series_dropped += 1
            return None
        series = TaskSeries(task_labels(hostname, name, queue),
                            len(self.runtime_bounds), len(self.wait_bounds))
        self.series[(hostname, name, queue)] = series
        return series

    def _allowed(self, name: str) -> bool:
        verdict = self._name_allowed.get(name)
        if verdict is None:
            verdict = ((not self.task_allow or any(fnmatchcase(name, p) for p in self.task_allow))
                       and not any(fnmatchcase(name, p) for p in self.task_deny))
            if len(self._name_allowed) >= _NAME_CACHE_LIMIT:
                self._name_allowed.clear()
            self._name_allowed[name] = verdict
        return verdict

    # Called with ``lock`` held, from other threads.

    def copy_tasks(self) -> list[TaskCopy]:
        return [TaskCopy(series) for series in self.series.values()]

    def copy_workers(self) -> tuple[dict[str, WorkerEvents], dict[str, float]]:
        return ({h: w.copy() for h, w in self.workers.items()}, dict(self.last_heard))

    def purge_hostnames(self, hostnames: Iterable[str]) -> None:
        """Forget every series of hosts gone for longer than the purge delay."""
        gone = set(hostnames)
        if not gone:
            return
        for key in [key for key in self.series if key[0] in gone]:
            del self.series[key]
        for uuid in [uuid for uuid, orphan in self.orphans.items() if orphan[0] in gone]:
            del self.orphans[uuid]
        for hostname in gone:
            self.workers.pop(hostname, None)
            self.last_heard.pop(hostname, None)
            self.single_queues.pop(hostname, None)
