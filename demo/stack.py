"""The whole loop on loopback, without Docker: exporter, actuator, Prometheus and Alertmanager.

What docker-compose.yml runs, started natively from the same files: the actuator gets
alerts/actuator-rules.yml and the bearer token of alerts/secrets/, Prometheus and Alertmanager
get alerts/ with the given thresholds, ``for:`` durations and 1-second intervals. Workers and
the broker are the caller's: the demo starts one worker, an end-to-end test starts the ones its
story needs.
"""
from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .alerting_stack import alerting_stack
from .bundle_config import ACTUATOR_RULES_FILE, ALERTS_DIR
from .http_client import get_json
from .servers import Alertmanager, Prometheus
from .services import HttpService, start_actuator, start_exporter

TOKEN_FILE = ALERTS_DIR / "secrets" / "actuator-token"
# The remediation alerts after 1 s instead of minutes: the demo's and the end-to-end tests' `for:`.
REMEDIATION_FOR = {"CeleryQueueBacklog": "1s", "CeleryQueueNoConsumers": "1s", "CeleryPoolOverprovisioned": "1s"}


@dataclass(frozen=True)
class StackSettings:
    """Where the loop runs and how tight it is.

    Ports left at None are free ones picked at start. ``thresholds`` and ``for_durations`` are
    those of demo.bundle_config.write_rule_files (threshold short names, an alert's ``for:``);
    ``repeat_interval`` is how often Alertmanager sends a firing alert again.
    """

    broker_url: str
    workdir: Path
    queues: Sequence[str] = ("celery",)
    rules: Path = ACTUATOR_RULES_FILE
    token_file: Path = TOKEN_FILE
    thresholds: Mapping[str, float] = field(default_factory=dict)
    for_durations: str | Mapping[str, str] | None = "1s"
    repeat_interval: str = "1h"
    exporter_port: int | None = None
    actuator_port: int | None = None
    prometheus_port: int | None = None
    alertmanager_port: int | None = None


@dataclass(frozen=True)
class Autopilot:
    """The running loop, with readers for what each part shows."""

    exporter: HttpService
    actuator: HttpService
    prometheus: Prometheus
    alertmanager: Alertmanager
    token: str

    def actions(self, **filters: str) -> list[dict[str, Any]]:
        """The actuator's audit log (GET /actions), newest first; ``filters`` as it documents them."""
        query = f"?{urllib.parse.urlencode(filters)}" if filters else ""
        return get_json(f"{self.actuator.url}/actions{query}",
                        headers={"Authorization": f"Bearer {self.token}"})["actions"]

    def firing(self) -> list[dict[str, Any]]:
        """The alerts Prometheus has firing now (pending ones are left out)."""
        return [alert for alert in self.prometheus.alerts() if alert["state"] == "firing"]

    def check_running(self) -> None:
        """GaveUp naming the first part of the loop that has exited, with its log."""
        for part in (self.exporter, self.actuator, self.prometheus, self.alertmanager):
            part.check_running("while the loop ran")


@contextmanager
def autopilot(settings: StackSettings) -> Iterator[Autopilot]:
    """Start the loop; every process started is stopped on exit, also after a failed start."""
    logs = settings.workdir / "logs"
    with ExitStack() as running:
        exporter = start_exporter(settings.broker_url, logs, queues=settings.queues, port=settings.exporter_port)
        running.callback(exporter.stop)
        actuator = start_actuator(settings.broker_url, logs, rules=settings.rules, token_file=settings.token_file,
                                  audit_db=settings.workdir / "audit.sqlite3", port=settings.actuator_port)
        running.callback(actuator.stop)
        alerting = running.enter_context(alerting_stack(
            settings.workdir / "alerting",
            exporter_targets=[f"127.0.0.1:{exporter.port}"],
            actuator_url=f"{actuator.url}/webhook",
            actuator_targets=[f"127.0.0.1:{actuator.port}"],
            token_file=settings.token_file,
            thresholds=settings.thresholds,
            for_durations=settings.for_durations,
            repeat_interval=settings.repeat_interval,
            prometheus_port=settings.prometheus_port,
            alertmanager_port=settings.alertmanager_port,
        ))
        yield Autopilot(exporter=exporter, actuator=actuator, prometheus=alerting.prometheus,
                        alertmanager=alerting.alertmanager, token=settings.token_file.read_text().strip())
