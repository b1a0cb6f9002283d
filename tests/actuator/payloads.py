"""Alertmanager webhook payloads in the exact shape Alertmanager 0.25 sends (version 4)."""
from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

_OCCURRENCES = itertools.count(1)


def new_start() -> str:
    """A startsAt no other notification of this session used: a new occurrence of an alert
    (the same alert notified again keeps its startsAt, and idempotency holds it to one action)."""
    n = next(_OCCURRENCES)
    return f"2026-12-{1 + n // 86400:02d}T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"


def alert(labels: dict[str, str], *, status: str = "firing", annotations: dict[str, str] | None = None,
          starts_at: str = "2026-11-26T10:00:00.123456789Z") -> dict[str, Any]:
    fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": labels,
        "annotations": annotations or {},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-26T10:05:00.123456789Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=celery_queue_length+%3E+100&g0.tab=1",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any], receiver: str = "celery-actuator") -> dict[str, Any]:
    common = dict(set.intersection(*(set(a["labels"].items()) for a in alerts))) if alerts else {}
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "receiver": receiver,
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {"alertname": common.get("alertname", "")},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}/{severity="page"}:{alertname="' + common.get("alertname", "") + '"}',
        "truncatedAlerts": 0,
    }


def backlog(queue: str, value: float, **kwargs: Any) -> dict[str, Any]:
    return notification(alert({"alertname": "CeleryQueueBacklog", "queue_name": queue, "severity": "page"},
                              annotations={"value": str(value), "summary": f"queue {queue} backlog"},
                              **kwargs))
