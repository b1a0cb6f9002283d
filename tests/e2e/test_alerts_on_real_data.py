"""Every alert of alerts/celery.rules.yml fires on what the REAL exporter serves.

The promtool unit tests prove the alerts' logic on series written by hand; this proves those
series are the ones the exporter really produces (names, labels, the joins between them), as
DESIGN.md asks of every PromQL expression. Real prefork workers, the real exporter and a real
Prometheus scraping it every second evaluate the shipped rules with `for: 1s` and thresholds
that any value passes, so each expression fires as soon as it returns data — and the conditions
that are not thresholds are made real: a worker killed with SIGKILL, a queue nobody consumes, a
pool grown past its concurrency, a worker that runs tasks without task events, a task that fails,
an exporter target that does not answer.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery

from demo.bundle_config import EXPORTER_JOB, alert_names, prometheus_config, write_rule_files
from demo.servers import Prometheus
from tests.support.exporter import ExporterProcess, start_exporter
from tests.support.inspection import control_app, pool_size
from tests.support.polling import wait_for
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e

# Every threshold passed by any value the exporter can serve.
ANY_VALUE = {"queue_backlog_messages": -1, "pool_busy_ratio": -1, "worker_rss_growth_bytes": -1,
             "task_failure_ratio": -1, "task_failure_min_finished": 0, "events_silence_seconds": -1}
DOOMED, GROWN, MUTE, STEADY = "doomed@alerts", "grown@alerts", "mute@alerts", "steady@alerts"
# What each alert must be about, where the story decides it.
SUBJECTS = {
    "CeleryWorkerDown": {"hostname": DOOMED},
    "CeleryQueueNoConsumers": {"queue_name": "orphan"},
    "CeleryPoolOverprovisioned": {"hostname": GROWN},
    "CeleryTaskFailureRatioHigh": {"name": "demo.fail"},
}


@pytest.fixture(scope="module")
def exporter(module_broker_url) -> Iterator[ExporterProcess]:
    running = start_exporter(module_broker_url, "--queues", "celery,orphan", "--heartbeat-timeout", "2")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def prometheus(exporter, tmp_path_factory) -> Iterator[Prometheus]:
    workdir = tmp_path_factory.mktemp("alerts-on-real-data")
    rule_files = write_rule_files(workdir, thresholds=ANY_VALUE, for_durations="1s")
    dead_exporter = f"127.0.0.1:{free_port()}"
    config = prometheus_config(rule_files=rule_files, targets={EXPORTER_JOB: [exporter.address, dead_exporter]})
    with Prometheus(config) as running:
        yield running


@pytest.fixture(scope="module")
def story(module_broker_url, module_worker_factory, exporter, prometheus) -> None:
    """Everything the alerts look for, made to happen for real."""
    doomed = module_worker_factory(DOOMED, queues=["celery"], concurrency=1)
    module_worker_factory(STEADY, queues=["celery"], concurrency=2)
    module_worker_factory(GROWN, queues=["idle"], concurrency=1)
    module_worker_factory(MUTE, queues=["mute"], concurrency=1, events=False)
    app = Celery("alerts-on-real-data", broker=module_broker_url, set_as_current=False)
    app.conf.task_send_sent_event = True
    control = control_app(module_broker_url)
    try:
        exporter.wait_metric("celery_worker_up", 1, hostname=DOOMED)
        doomed.kill()
        control.control.pool_grow(2, destination=[GROWN], reply=True)
        wait_for(lambda: pool_size(control, GROWN) == 3, timeout=20, interval=0.2, what=f"{GROWN} to grow to 3")
        app.send_task("demo.add", (1, 1), queue="mute")
        for _ in range(5):
            app.send_task("demo.add", (1, 2), queue="orphan")
        # rate() needs a counter that grows between two scrapes: a first failure, then more.
        app.send_task("demo.fail")
        wait_for(lambda: prometheus.query('celery_task_failed_total{name="demo.fail"}'), timeout=30,
                 interval=0.2, what="Prometheus to scrape the first failure")
        for _ in range(3):
            app.send_task("demo.fail")
            app.send_task("demo.add", (2, 2))
    finally:
        app.close()
        control.close()


@pytest.mark.parametrize("alertname", alert_names())
def test_the_alert_fires_on_real_exporter_data(story, prometheus, alertname):
    firing = prometheus.wait_for_alert(alertname, timeout=60)
    wanted = SUBJECTS.get(alertname, {})
    assert any(wanted.items() <= alert["labels"].items() for alert in firing), (wanted, firing)
    assert all(alert["annotations"]["value"] for alert in firing), firing
