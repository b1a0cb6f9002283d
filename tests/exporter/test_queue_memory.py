"""A queue found by inspection is still measured after its last consumer is cancelled.

Otherwise its messages would vanish from /metrics with the consumer, and CeleryQueueNoConsumers
could only fire for queues named by --queues. Queues nobody consumed for --purge-after are
forgotten, as gone workers are.
"""
from __future__ import annotations

import time

from celery import Celery

from exporter.poll_results import PollResults
from tests.support.exporter import start_exporter
from tests.support.polling import wait_for

PURGE_AFTER = 4.0


def test_queues_seen_consumed_are_measured_until_forgotten():
    polls = PollResults()
    with polls.lock:
        polls.note_consumed("a@host", ("celery", "reports"))
        polls.note_consumed("a@host", ("celery",))
    assert polls.known_queues(("always",)) == ["always", "celery", "reports"]
    assert polls.forget_queues(60) == set()
    polls.consumed_at["reports"] -= 61
    assert polls.forget_queues(60) == {"reports"}
    assert polls.known_queues(("always",)) == ["always", "celery"]


def test_a_cancelled_queue_keeps_its_depth_until_purge_after(broker_url, worker_factory):
    worker = worker_factory("lonely@autopilot-test", queues=["celery", "lonely"], concurrency=1)
    exporter = start_exporter(broker_url, "--purge-after", str(PURGE_AFTER))
    app = Celery("producer", broker=broker_url, set_as_current=False)
    try:
        exporter.wait_metric("celery_active_consumer_count", 1, queue_name="lonely")
        reply = app.control.cancel_consumer("lonely", destination=[worker.name], reply=True)
        assert reply == [{worker.name: {"ok": "no longer consuming from lonely"}}]
        cancelled_at = time.monotonic()
        exporter.wait_metric("celery_active_consumer_count", 0, queue_name="lonely")
        for _ in range(3):
            app.send_task("demo.add", (1, 2), queue="lonely")
        metrics = exporter.wait_metric("celery_queue_length", 3, queue_name="lonely")
        assert metrics.value("celery_worker_consumer", hostname=worker.name, queue_name="lonely") is None

        wait_for(lambda: 'queue_name="lonely"' not in exporter.metrics().text, timeout=PURGE_AFTER + 10,
                 interval=0.2, what="queue lonely to be forgotten")
        # The last inspection that saw it consumed was at most a round (1 s) before the cancel.
        assert time.monotonic() - cancelled_at >= PURGE_AFTER - 1.5, "forgotten before --purge-after"
        assert exporter.metrics().value("celery_queue_length", queue_name="celery") == 0
    finally:
        app.close()
        exporter.stop()
