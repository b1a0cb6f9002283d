"""The metric names alerts/ and grafana/ may use, and a way to find the names an expression uses.

The exporter's names are DESIGN.md's metric table. The exporter's self-metrics and the
actuator's action counter are not in that table: the names below are the ones the bundle
assumes (see the README's "Monitoring bundle" section); the end-to-end test against the real
exporter and actuator is what proves them.
"""
from __future__ import annotations

import re

_TASK_STATES = ("sent", "received", "started", "succeeded", "failed", "retried", "rejected", "revoked")
_HISTOGRAMS = ("celery_task_runtime", "celery_task_queue_wait_time")

EXPORTER_METRICS = frozenset({
    *(f"celery_task_{state}_total" for state in _TASK_STATES),
    *(f"{histogram}{suffix}" for histogram in _HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")),
    "celery_worker_up",
    "celery_worker_tasks_active",
    "celery_worker_last_heartbeat_timestamp_seconds",
    "celery_worker_pool_processes",
    "celery_worker_pool_max_concurrency",
    "celery_worker_pool_autoscaler_min",
    "celery_worker_pool_autoscaler_max",
    "celery_worker_prefetch_count",
    "celery_worker_max_rss_bytes",
    "celery_worker_consumer",
    "celery_queue_length",
    "celery_active_consumer_count",
    "celery_active_worker_count",
    "celery_active_process_count",
    # Assumed names of the exporter's own health metrics.
    "celery_exporter_broker_connected",
    "celery_exporter_last_event_timestamp_seconds",
    "celery_exporter_events_total",
})

# Assumed name of the actuator's action counter (labels rule, command, outcome).
ACTUATOR_METRICS = frozenset({"autopilot_actions_total"})

# Series Prometheus itself makes.
PROMETHEUS_METRICS = frozenset({"up", "ALERTS"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_NAME_MATCHER = re.compile(r'__name__\s*=~\s*"((?:[^"\\]|\\.)*)"')
_PROJECT_NAME = re.compile(r"\b(?:celery|autopilot)_[A-Za-z0-9_:]*")


def metric_names(expr: str, candidates: frozenset[str]) -> set[str]:
    """The project metric names ``expr`` reads: plain selectors, and ``{__name__=~"..."}``
    matchers expanded against ``candidates`` (a matcher that selects none of them is returned
    as-is, so it shows up as unknown)."""
    names = set(_PROJECT_NAME.findall(_STRING.sub('""', expr)))
    for pattern in _NAME_MATCHER.findall(expr):
        selected = {name for name in candidates if re.fullmatch(pattern, name)}
        names |= selected or {f'{{__name__=~"{pattern}"}}'}
    return names
