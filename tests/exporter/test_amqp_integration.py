"""The same counter and queue-depth checks over amqp://, when RabbitMQ runs on 127.0.0.1:5672.

Each run gets a throwaway vhost, so nothing here sees another run's queues or events. The worker
and the exporter start once for the module; the known mix runs before the second worker joins.
"""
from __future__ import annotations


import pytest
from celery import Celery
from kombu import Connection, Exchange, Queue

from tests.exporter.known_mix import check_known_mix, send_known_mix
from tests.support.exporter import start_exporter
from tests.support.rabbitmq import throwaway_vhost

PRIORITY_QUEUE = "amqp_prio"


@pytest.fixture(scope="module")
def amqp_url():
    with throwaway_vhost() as url:
        yield url


@pytest.fixture(scope="module")
def exporter(amqp_url):
    process = start_exporter(amqp_url, "--queues", f"amqp_backlog,{PRIORITY_QUEUE}",
                             "--heartbeat-timeout", "5")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def app(amqp_url):
    app = Celery("producer", broker=amqp_url, set_as_current=False)
    app.conf.task_send_sent_event = True
    yield app
    app.close()


@pytest.fixture(scope="module")
def mix_worker(amqp_url, exporter, module_worker_factory):
    return module_worker_factory("amqp@autopilot-test", broker_url=amqp_url, queues=["amqpmix"],
                                 concurrency=2)


def test_known_mix_counts_every_state_over_amqp(exporter, app, mix_worker):
    """test_redis_integration's known mix, over amqp://."""
    # Events reach RabbitMQ over the producer's and the worker's own connections (and each pool
    # process's), which RabbitMQ does not order among themselves: a task-received can overtake
    # its task-sent; the queue then comes from inspection.
    exporter.wait_metric("celery_worker_consumer", 1, hostname=mix_worker.name, queue_name="amqpmix")
    # Revoked before it is sent, a task's task-revoked carries no name; over AMQP it overtook the
    # task-sent in about 1 run in 8, so the exporter holds it briefly (aggregates.ORPHAN_GRACE).
    send_known_mix(app, mix_worker.name, "amqpmix")
    metrics = check_known_mix(exporter, mix_worker.name, "amqpmix")
    assert metrics.value("celery_exporter_tasks_in_flight") == 0


def test_priority_backlog_is_counted_in_full_and_consumers_match_workers(exporter, app, amqp_url, mix_worker,
                                                                         module_worker_factory):
    # Started first, so that it is ready by the time the backlog is checked.
    second = module_worker_factory("amqp2@autopilot-test", broker_url=amqp_url, queues=["amqpmix"],
                                   concurrency=3)
    # A priority queue the way Celery users declare one: RabbitMQ keeps it as one queue (no
    # per-priority sub-queues as on Redis), whose message count is the whole backlog.
    producer = Celery("prio", broker=amqp_url, set_as_current=False)
    priority_queue = Queue(PRIORITY_QUEUE, Exchange(PRIORITY_QUEUE), routing_key=PRIORITY_QUEUE,
                           queue_arguments={"x-max-priority": 10})
    producer.conf.task_queues = [priority_queue]
    try:
        for i in range(25):
            producer.send_task("demo.add", args=(i, i), queue=PRIORITY_QUEUE, priority=i % 10)
        for i in range(7):
            producer.send_task("demo.add", args=(i, i), queue="amqp_backlog")
    finally:
        producer.close()
    exporter.wait_metric("celery_queue_length", 25, queue_name=PRIORITY_QUEUE)
    metrics = exporter.wait_metric("celery_queue_length", 7, queue_name="amqp_backlog")
    assert metrics.value("celery_active_consumer_count", queue_name=PRIORITY_QUEUE) == 0
    assert metrics.value("celery_active_consumer_count", queue_name="amqp_backlog") == 0
    # It really is a priority queue: the highest priority comes out first, though sent last but one.
    # (basic.get: no consumer that RabbitMQ would push the rest of the backlog to.)
    with Connection(amqp_url) as conn:
        message = priority_queue(conn.channel()).get(no_ack=False)
        assert message is not None and message.properties["priority"] == 9
        message.ack()
    exporter.wait_metric("celery_queue_length", 24, queue_name=PRIORITY_QUEUE)

    metrics = exporter.wait_metric("celery_active_process_count", 5, queue_name="amqpmix")
    assert metrics.value("celery_queue_length", queue_name="amqpmix") == 0
    assert metrics.value("celery_active_worker_count", queue_name="amqpmix") == 2
    # RabbitMQ's own count of consumers (on Redis it is the count of up workers, by definition).
    assert metrics.value("celery_active_consumer_count", queue_name="amqpmix") == 2
    assert metrics.value("celery_worker_consumer", hostname=second.name, queue_name="amqpmix") == 1
    assert metrics.value("celery_worker_pool_processes", hostname=mix_worker.name) == 2
    assert metrics.value("celery_worker_pool_processes", hostname=second.name) == 3
    second.kill()
