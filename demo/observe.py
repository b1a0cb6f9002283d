"""What the demo shows, read where an operator would look: the exporter's /metrics for queue
depth and pool size, Prometheus for firing alerts, the actuator's audit log for actions."""
from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from .stack import Autopilot


@dataclass(frozen=True)
class Observation:
    queue_length: int | None
    pool_size: int | None
    firing: tuple[str, ...]
    actions: tuple[dict[str, Any], ...] = field(default=())


def _samples(text: str, metric: str, label: str, value: str) -> list[float]:
    return [sample.value for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == metric and sample.labels.get(label) == value]


def observe(autopilot: Autopilot, *, queue: str, worker: str) -> Observation:
    """One look at the loop; a part that does not answer yet shows as unknown (None, empty)."""
    with urllib.request.urlopen(f"{autopilot.exporter.url}/metrics", timeout=2) as response:
        text = response.read().decode()
    lengths = _samples(text, "celery_queue_length", "queue_name", queue)
    pools = _samples(text, "celery_worker_pool_processes", "hostname", worker)
    firing = tuple(sorted({alert["labels"]["alertname"] for alert in autopilot.firing()}))
    return Observation(queue_length=int(lengths[0]) if lengths else None,
                       pool_size=int(pools[0]) if pools else None,
                       firing=firing,
                       actions=tuple(reversed(autopilot.actions())))
