"""Workers without task events (no -E): reported, and switched on by --enable-events.

Without -E a worker still sends heartbeats, whose ``processed`` count grows with every task,
but no task events: that is what the exporter detects.
"""
from __future__ import annotations

from celery import Celery

from tests.support.exporter import start_exporter
from tests.support.polling import wait_for


def test_worker_without_task_events_is_reported_and_enable_events_fixes_it(broker_url, worker_factory):
    watcher = start_exporter(broker_url)
    enabler = None
    app = Celery("producer", broker=broker_url, set_as_current=False)
    try:
        worker = worker_factory("silent@autopilot-test", queues=["silent"], concurrency=1, events=False)
        app.send_task("demo.add", args=(1, 1), queue="silent")
        metrics = watcher.wait_metric("celery_exporter_workers_without_events", 1)
        assert metrics.value("celery_worker_up", hostname=worker.name) == 1
        assert metrics.value("celery_task_received_total", hostname=worker.name) is None

        enabler = start_exporter(broker_url, "--enable-events")

        def received() -> bool:
            app.send_task("demo.add", args=(1, 1), queue="silent")
            # A task already running when events came on shows up as name "unknown": ask for ours.
            return bool(watcher.metrics().value("celery_task_received_total", hostname=worker.name,
                                                name="demo.add"))
        wait_for(received, timeout=15, interval=0.5, what="task events from the worker once enabled")
        assert watcher.metrics().value("celery_exporter_workers_without_events") == 0
    finally:
        app.close()
        watcher.stop()
        if enabler is not None:
            enabler.stop()
