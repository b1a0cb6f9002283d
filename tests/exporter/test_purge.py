"""A dead worker's series stay while it is down, then all of them go after --purge-after."""
from __future__ import annotations

import time

from celery import Celery

from tests.support.exporter import start_exporter
from tests.support.polling import wait_for

PURGE_AFTER = 2.0


def test_dead_worker_series_are_purged_after_the_delay(broker_url, worker_factory):
    exporter = start_exporter(broker_url, "--heartbeat-timeout", "1", "--purge-after", str(PURGE_AFTER))
    app = Celery("producer", broker=broker_url, set_as_current=False)
    try:
        worker = worker_factory("mortal@autopilot-test", queues=["mortal"], concurrency=1)
        app.send_task("demo.add", args=(1, 1), queue="mortal")
        exporter.wait_metric("celery_task_succeeded_total", 1, hostname=worker.name)
        worker.kill()
        exporter.wait_metric("celery_worker_up", 0, hostname=worker.name)
        down_at = time.monotonic()
        metrics = exporter.metrics()
        assert metrics.value("celery_task_succeeded_total", hostname=worker.name) == 1

        def purged() -> bool:
            return worker.name not in exporter.metrics().text
        wait_for(purged, timeout=PURGE_AFTER + 10, interval=0.2, what="the dead worker's series to be purged")
        # Silence began up to one heartbeat timeout (1 s) before the worker was seen down.
        assert time.monotonic() - down_at >= PURGE_AFTER - 1.5, "purged before --purge-after"
    finally:
        app.close()
        exporter.stop()
