"""The exporter's configuration as one plain typed object.

Built by ``cli.py`` from flags and environment variables and handed down; nothing below the CLI
reads the environment or ``sys.argv``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .web_config import WebConfig

# prometheus_client's default buckets, the ones celery-exporter's `celery_task_runtime` uses, so
# dashboards built on it keep their quantiles.
DEFAULT_RUNTIME_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
# Queue waits span from milliseconds (idle workers) to many minutes (a backlog).
DEFAULT_QUEUE_WAIT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
)


@dataclass(frozen=True)
class Settings:
    broker_url: str
    host: str = "0.0.0.0"
    port: int = 9808
    queues: tuple[str, ...] = ("celery",)
    events_exchange: str = "celeryev"
    control_exchange: str = "celery"
    redis_key_prefix: str = ""
    queue_interval: float = 5.0
    inspect_interval: float = 5.0
    inspect_timeout: float = 1.0
    discovery_interval: float = 30.0
    heartbeat_timeout: float | None = None  # None means "auto": 3 x the worker's freq, <= 60 s
    purge_after: float = 1800.0
    runtime_buckets: tuple[float, ...] = DEFAULT_RUNTIME_BUCKETS
    queue_wait_buckets: tuple[float, ...] = DEFAULT_QUEUE_WAIT_BUCKETS
    task_allow: tuple[str, ...] = ()
    task_deny: tuple[str, ...] = ()
    max_series: int = 10_000
    max_exception_labels: int = 20
    max_tasks_in_flight: int = 50_000
    generic_hostname_task_sent_metric: bool = True
    max_message_bytes: int = 1_048_576
    enable_events: bool = False
    reconnect_max_delay: float = 10.0
    broker_heartbeat: float = 5.0
    log_level: str = "INFO"
    log_format: str = "text"
    web_config: WebConfig | None = None  # TLS and basic auth (--web.config.file)
    # Settings of the user's Celery app (``celery -A proj exporter``) that shape broker connections
    # and remote control (CELERY_CONNECTION_SETTINGS), applied as they are to the exporter's app.
    celery_config: Mapping[str, Any] = field(default_factory=dict)


# The Celery settings that decide how to reach the broker and talk to workers: the exporter takes
# them from the app when it has one, so that TLS, failover, credentials and serializers match.
CELERY_CONNECTION_SETTINGS = (
    "broker_transport", "broker_transport_options", "broker_use_ssl", "broker_login_method",
    "broker_failover_strategy", "broker_connection_timeout", "broker_user", "broker_password",
    "broker_vhost", "broker_port", "accept_content", "task_serializer",
    "control_queue_ttl", "control_queue_expires", "control_queue_exclusive", "control_queue_durable",
)

