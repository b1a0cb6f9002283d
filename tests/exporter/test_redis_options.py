"""kombu's Redis transport options that move the events channels and queue keys."""
from __future__ import annotations

import pytest
from celery import Celery

from tests.support.exporter import start_exporter


@pytest.mark.parametrize("transport_options, exporter_args", [
    ({"global_keyprefix": "tenant7:"}, ["--redis-key-prefix", "tenant7:"]),
    ({"fanout_patterns": False}, []),
], ids=["global_keyprefix", "fanout_patterns_off"])
def test_events_and_queue_depth_follow_the_transport_options(broker_url, transport_options, exporter_args):
    exporter = start_exporter(broker_url, "--queues", "opts", *exporter_args)
    app = Celery("producer", broker=broker_url, set_as_current=False)
    app.conf.task_send_sent_event = True
    app.conf.broker_transport_options = transport_options
    try:
        for _ in range(3):
            app.send_task("demo.add", args=(1, 1), queue="opts")
        metrics = exporter.wait_metric("celery_task_sent_total", 3, name="demo.add", hostname="generic",
                                       queue_name="opts")
        exporter.wait_metric("celery_queue_length", 3, queue_name="opts")
        assert metrics.value("celery_exporter_decode_errors_total", reason="invalid_json") == 0
    finally:
        app.close()
        exporter.stop()
