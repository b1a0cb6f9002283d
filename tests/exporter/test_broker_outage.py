"""Redis stops and comes back under a running exporter: it reconnects and keeps counting."""
from __future__ import annotations

import pytest
from celery import Celery

from tests.support.exporter import http_get, start_exporter
from tests.support.redis_server import RedisServer


@pytest.fixture
def private_redis():
    """A broker of this test's own: stopping it must not disturb other tests' brokers."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


def test_exporter_survives_a_redis_restart_and_counts_events_sent_after_it(private_redis):
    url = private_redis.url(0)
    exporter = start_exporter(url)
    app = Celery("producer", broker=url, set_as_current=False)
    app.conf.task_send_sent_event = True
    sent = {"name": "demo.add", "hostname": "generic", "queue_name": "celery"}
    try:
        for _ in range(3):
            app.send_task("demo.add", args=(1, 1))
        exporter.wait_metric("celery_task_sent_total", 3, **sent)

        private_redis.stop()
        exporter.wait_metric("celery_exporter_broker_connected", 0, timeout=10)
        assert http_get(exporter.url + "/healthz")[0] == 503
        assert exporter.metrics().value("celery_task_sent_total", **sent) == 3, "counts survive the outage"
        # The pollers notice too, and neither hangs on the dead broker; depths no one can measure
        # any more are not shown.
        metrics = exporter.wait_metric("celery_exporter_source_up", 0, source="queue_depth", timeout=10)
        assert metrics.value("celery_queue_length", queue_name="celery") is None
        exporter.wait_metric("celery_exporter_source_up", 0, source="inspection", timeout=10)

        private_redis.start()
        metrics = exporter.wait_metric("celery_exporter_broker_connected", 1, timeout=15)
        assert metrics.value("celery_exporter_source_errors_total", source="events") >= 1
        assert http_get(exporter.url + "/healthz")[0] == 200
        exporter.wait_metric("celery_queue_length", 0, queue_name="celery", timeout=10)
        exporter.wait_metric("celery_exporter_source_up", 1, source="inspection", timeout=15)
        for _ in range(4):
            app.send_task("demo.add", args=(1, 1))
        exporter.wait_metric("celery_task_sent_total", 7, **sent)
        assert exporter.proc.poll() is None
    finally:
        app.close()
        exporter.stop()
