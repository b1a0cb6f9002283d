"""One consistent, immutable picture of everything a scrape renders.

Taking it costs dict and list copies under the two state locks, never a broker round trip, and
the locks are released before any text is produced.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .aggregates import Aggregates, TaskCopy
from .liveness import Liveness
from .poll_results import PollResults, SourceHealth, WorkerStats
from .processor import EventProcessor


@dataclass(frozen=True)
class WorkerView:
    hostname: str
    up: bool
    # Answers inspection but sends no events, or processes tasks without sending task events.
    without_events: bool
    tasks_active: int | None
    last_heartbeat: float | None
    stats: WorkerStats | None
    queues: tuple[str, ...]


@dataclass(frozen=True)
class QueueView:
    name: str
    messages: int | None
    consumers: int
    workers: int
    processes: int


@dataclass(frozen=True)
class Snapshot:
    tasks: list[TaskCopy]
    runtime_bounds: tuple[float, ...]
    wait_bounds: tuple[float, ...]
    workers: list[WorkerView]
    queues: list[QueueView]
    events_by_type: dict[str, int]
    decode_errors: dict[str, int]
    last_event_time: float | None
    broker_connected: bool
    sources: dict[str, SourceHealth]
    series_dropped: int
    exceptions_folded: int
    tasks_in_flight: int
    in_flight_evicted: int


def take_snapshot(aggregates: Aggregates, processor: EventProcessor, polls: PollResults,
                  liveness: Liveness, always_queues: tuple[str, ...]) -> Snapshot:
    with aggregates.lock:
        tasks = aggregates.copy_tasks()
        worker_events, last_heard = aggregates.copy_workers()
        events_by_type, errors, last_event_time = processor.copy_counts()
        series_dropped = aggregates.series_dropped
        exceptions_folded = aggregates.exceptions_folded
        in_flight = len(aggregates.in_flight)
        evicted = aggregates.in_flight_evicted
    polled = polls.copy()
    if time.monotonic() > polled.queues_valid_until:
        polled.queues = {}
    now = liveness.clock()

    workers = []
    for hostname in sorted(set(worker_events) | set(polled.stats) | set(polled.consumed)):
        events = worker_events.get(hostname)
        up = liveness.is_up(events, last_heard.get(hostname), polled.answered_at.get(hostname), now)
        workers.append(WorkerView(
            hostname=hostname,
            up=up,
            without_events=events is None or events.without_task_events,
            # A worker that is down runs nothing, whatever its last heartbeat said.
            tasks_active=(events.active if up else 0) if events else None,
            last_heartbeat=events.last_heartbeat if events else None,
            stats=polled.stats.get(hostname),
            queues=polled.consumed.get(hostname, ()),
        ))
    return Snapshot(
        tasks=tasks, runtime_bounds=aggregates.runtime_bounds, wait_bounds=aggregates.wait_bounds,
        workers=workers, queues=_queue_views(workers, polled, always_queues),
        events_by_type=events_by_type, decode_errors=errors, last_event_time=last_event_time,
        broker_connected=polled.broker_connected, sources=polled.sources,
        series_dropped=series_dropped, exceptions_folded=exceptions_folded, tasks_in_flight=in_flight, in_flight_evicted=evicted,
    )


def _queue_views(workers: list[WorkerView], polled: PollResults,
                 always_queues: tuple[str, ...]) -> list[QueueView]:
    names = dict.fromkeys(always_queues)
    names.update(dict.fromkeys(polled.queues))
    for worker in workers:
        names.update(dict.fromkeys(worker.queues))
    views = []
    for name in names:
        consuming = [w for w in workers if w.up and name in w.queues]
        depth = polled.queues.get(name)
        processes = sum((w.stats.pool_processes or 0) for w in consuming if w.stats)
        broker_consumers = depth.consumers if depth else None
        views.append(QueueView(
            name=name,
            messages=depth.messages if depth else None,
            consumers=len(consuming) if broker_consumers is None else broker_consumers,
            workers=len(consuming),
            processes=processes,
        ))
    return views
