"""The same counter and queue-depth checks over amqp://, when RabbitMQ runs on 127.0.0.1:5672.

Each run gets a throwaway vhost, so nothing here sees another run's queues or events.
"""
from __future__ import annotations

import pytest
from celery import Celery

from tests.support.exporter import start_exporter
from tests.support.rabbitmq import throwaway_vhost


@pytest.fixture(scope="module")
def amqp_url():
    with throwaway_vhost() as url:
        yield url


@pytest.fixture(scope="module")
def exporter(amqp_url):
    process = start_exporter(amqp_url, "--queues", "amqp_backlog", "--heartbeat-timeout", "5")
    yield process
    process.stop()


def test_counters_and_queue_depths_over_amqp(amqp_url, exporter, module_worker_factory):
    worker = module_worker_factory("amqp@autopilot-test", broker_url=amqp_url, queues=["amqpmix"],
                                   concurrency=2)
    # Events reach RabbitMQ over the producer's and the worker's own connections, so a
    # task-received can overtake its task-sent; the queue then comes from inspection.
    exporter.wait_metric("celery_worker_consumer", 1, hostname=worker.name, queue_name="amqpmix")
    app = Celery("producer", broker=amqp_url, set_as_current=False)
    app.conf.task_send_sent_event = True
    try:
        for i in range(3):
            app.send_task("demo.add", args=(i, i), queue="amqpmix")
        for _ in range(2):
            app.send_task("demo.fail", queue="amqpmix")
        for i in range(7):
            app.send_task("demo.add", args=(i, i), queue="amqp_backlog")
    finally:
        app.close()

    labels = {"hostname": worker.name, "queue_name": "amqpmix"}
    exporter.wait_metric("celery_task_failed_total", 2, name="demo.fail", exception="DemoError", **labels)
    metrics = exporter.wait_metric("celery_task_succeeded_total", 3, name="demo.add", **labels)
    assert metrics.value("celery_task_sent_total", name="demo.add", hostname="generic",
                         queue_name="amqpmix") == 3
    assert metrics.value("celery_task_received_total", name="demo.add", **labels) == 3
    assert metrics.value("celery_task_started_total", name="demo.fail", **labels) == 2
    assert metrics.value("celery_task_runtime_count", name="demo.add", **labels) == 3
    assert metrics.value("celery_task_queue_wait_time_count", name="demo.fail", **labels) == 2

    metrics = exporter.wait_metric("celery_queue_length", 7, queue_name="amqp_backlog")
    assert metrics.value("celery_active_consumer_count", queue_name="amqp_backlog") == 0
    # amqpmix is measured once inspection has discovered that the worker consumes it.
    metrics = exporter.wait_metric("celery_queue_length", 0, queue_name="amqpmix")
    assert metrics.value("celery_active_consumer_count", queue_name="amqpmix") == 1  # RabbitMQ's count
    assert metrics.value("celery_active_worker_count", queue_name="amqpmix") == 1
    assert metrics.value("celery_active_process_count", queue_name="amqpmix") == 2
    assert metrics.value("celery_worker_pool_processes", hostname=worker.name) == 2
