"""Prometheus and Alertmanager started together from the alerts/ files, at demo and test speed."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .bundle_config import (
    ACTUATOR_JOB, EXPORTER_JOB, alertmanager_config, prometheus_config, write_rule_files,
)
from .servers import Alertmanager, Prometheus


@dataclass(frozen=True)
class AlertingStack:
    prometheus: Prometheus
    alertmanager: Alertmanager


@contextmanager
def alerting_stack(
    workdir: Path,
    *,
    exporter_targets: Sequence[str],
    actuator_url: str,
    token_file: Path,
    actuator_targets: Sequence[str] = (),
    thresholds: Mapping[str, float] | None = None,
    for_durations: str | Mapping[str, str] | None = "1s",
    repeat_interval: str = "1h",
    instance_labels: Mapping[str, str] | None = None,
    on_call_url: str | None = None,
    external_urls: bool = False,
    prometheus_port: int | None = None,
    alertmanager_port: int | None = None,
) -> Iterator[AlertingStack]:
    """Alertmanager routing to ``actuator_url``, then Prometheus scraping and alerting into it.

    Scrape and evaluation every 1 s, group_wait and group_interval 1 s, resend delay 1 s;
    thresholds and ``for:`` as given (bundle_config.write_rule_files), ``keep_firing_for:`` 2 s,
    and ``repeat_interval`` (how often a firing alert is sent again) as given. ``external_urls`` makes notifications carry the
    docker-compose addresses (http://prometheus:9090, http://alertmanager:9093) instead of this
    machine's name and random ports, as the committed samples do. Both listen on free ports
    unless given theirs, and are stopped on exit.
    """
    rule_files = write_rule_files(workdir / "rules", thresholds=thresholds, for_durations=for_durations)
    targets = {EXPORTER_JOB: list(exporter_targets)}
    if actuator_targets:
        targets[ACTUATOR_JOB] = list(actuator_targets)
    am_config = alertmanager_config(actuator_url=actuator_url, credentials_file=token_file,
                                    on_call_url=on_call_url, repeat_interval=repeat_interval)
    with Alertmanager(am_config, external_url="http://alertmanager:9093" if external_urls else None,
                      port=alertmanager_port) as am:
        prom_config = prometheus_config(rule_files=rule_files, targets=targets,
                                        alertmanagers=[am.address], instance_labels=instance_labels)
        with Prometheus(prom_config, external_url="http://prometheus:9090" if external_urls else None,
                        port=prometheus_port) as prom:
            yield AlertingStack(prometheus=prom, alertmanager=am)
