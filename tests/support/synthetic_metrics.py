"""Exporter-shaped metrics in which every alert of alerts/celery.rules.yml holds at once.

Served by a MetricsTarget in place of the real exporter, they drive the shipped rules through
real Prometheus and Alertmanager without Celery: the quickest way to see every alert's
notification exactly as the actuator will receive it. The story (default thresholds):

- queue ``celery`` holds 750 messages (backlog) and is consumed by ``celery@worker1``;
- queue ``orphan`` holds 12 messages and nobody consumes it;
- ``celery@worker1`` runs 4 tasks on 4 processes (saturated), and the peak RSS of its main
  process grows by 128 MiB a second (leaking);
- ``celery@worker2`` is down;
- ``celery@worker3`` was grown from 2 to 6 processes, is idle and its queue ``reports`` is empty;
- task ``demo.fail`` fails 3 runs in 4;
- the exporter is connected to the broker but heard no event for 10 minutes, and sees one live
  worker without task events.

A second, unreachable exporter target makes CeleryExporterDown fire.
"""
from __future__ import annotations

import time
from typing import Callable

GIB = 1024 ** 3
MIB = 1024 ** 2

_GAUGES: dict[str, list[tuple[dict[str, str], float]]] = {
    "celery_worker_up": [({"hostname": "celery@worker1"}, 1), ({"hostname": "celery@worker2"}, 0),
                         ({"hostname": "celery@worker3"}, 1)],
    "celery_worker_tasks_active": [({"hostname": "celery@worker1"}, 4), ({"hostname": "celery@worker3"}, 0)],
    "celery_worker_pool_processes": [({"hostname": "celery@worker1"}, 4), ({"hostname": "celery@worker3"}, 6)],
    "celery_worker_pool_max_concurrency": [({"hostname": "celery@worker1"}, 4),
                                           ({"hostname": "celery@worker3"}, 2)],
    "celery_worker_consumer": [({"hostname": "celery@worker1", "queue_name": "celery"}, 1),
                               ({"hostname": "celery@worker3", "queue_name": "reports"}, 1)],
    "celery_active_consumer_count": [({"queue_name": "celery"}, 1), ({"queue_name": "orphan"}, 0),
                                     ({"queue_name": "reports"}, 1)],
    "celery_active_worker_count": [({"queue_name": "celery"}, 1), ({"queue_name": "orphan"}, 0),
                                   ({"queue_name": "reports"}, 1)],
    "celery_exporter_broker_connected": [({}, 1)],
    "celery_exporter_workers_without_events": [({}, 1)],
}

_TASK = {"name": "demo.fail", "hostname": "celery@worker1", "queue_name": "celery"}


def _line(metric: str, labels: dict[str, str], value: float) -> str:
    rendered = ",".join(f'{key}="{val}"' for key, val in labels.items())
    return f"{metric}{{{rendered}}} {value!r}" if rendered else f"{metric} {value!r}"


class EveryAlertFiring:
    """Renders the exposition at each scrape; counters grow with time so rate() has data.

    Set ``backlog`` to 0 to let CeleryQueueBacklog resolve while everything else keeps firing.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started = clock()
        self.backlog = 750

    def __call__(self) -> str:
        now = self.clock()
        elapsed = now - self.started
        lines = [f"# TYPE {metric} gauge\n" + "\n".join(_line(metric, labels, value) for labels, value in series)
                 for metric, series in _GAUGES.items()]
        lines.append("# TYPE celery_queue_length gauge\n" + "\n".join([
            _line("celery_queue_length", {"queue_name": "celery"}, float(self.backlog)),
            _line("celery_queue_length", {"queue_name": "orphan"}, 12.0),
            _line("celery_queue_length", {"queue_name": "reports"}, 0.0),
        ]))
        lines.append("# TYPE celery_worker_max_rss_bytes gauge\n" + "\n".join([
            _line("celery_worker_max_rss_bytes", {"hostname": "celery@worker1"}, 100 * MIB + 128 * MIB * elapsed),
            _line("celery_worker_max_rss_bytes", {"hostname": "celery@worker3"}, GIB / 4),
        ]))
        lines.append("# TYPE celery_task_failed_total counter\n"
                     + _line("celery_task_failed_total", {**_TASK, "exception": "DemoError"}, 30 * elapsed))
        lines.append("# TYPE celery_task_succeeded_total counter\n"
                     + _line("celery_task_succeeded_total", _TASK, 10 * elapsed))
        lines.append("# TYPE celery_exporter_last_event_timestamp_seconds gauge\n"
                     + _line("celery_exporter_last_event_timestamp_seconds", {}, self.started - 600))
        return "\n".join(lines) + "\n"
