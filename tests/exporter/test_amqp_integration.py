"""The same counter and queue-depth checks over amqp://, when RabbitMQ runs on 127.0.0.1:5672.

Each run gets a throwaway vhost, so nothing here sees another run's queues or events. The worker
and the exporter start once for the module; the known mix runs before the second worker joins.
"""
from __future__ import annotations

import uuid

import pytest
from celery import Celery
from kombu import Connection, Exchange, Queue

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
    n_add, n_mul, m_fail, k_retries, r_reject = 5, 3, 2, 2, 3
    for i in range(n_add):
        app.send_task("demo.add", args=(i, i), queue="amqpmix")
    for i in range(n_mul):
        app.send_task("demo.mul", args=(i, 2), queue="amqpmix")
    for _ in range(m_fail):
        app.send_task("demo.fail", queue="amqpmix")
    app.send_task("demo.retry", args=(k_retries,), queue="amqpmix")
    for _ in range(r_reject):
        app.send_task("demo.reject", queue="amqpmix")
    # Revoked before it is sent: the worker drops it on receipt with a task-revoked event, which
    # carries no name. Its name comes from the task-sent, published right after the task; over
    # AMQP the task-revoked (worker's connection) overtook it in about 1 run in 8, so the
    # exporter holds a nameless task-revoked briefly for its task-sent (aggregates.ORPHAN_GRACE).
    revoked_id = str(uuid.uuid4())
    replies = app.control.revoke(revoked_id, destination=[mix_worker.name], reply=True, timeout=5)
    assert replies, "the worker did not acknowledge the revoke"
    app.send_task("demo.sleep", args=(0,), queue="amqpmix", task_id=revoked_id)

    worker = {"hostname": mix_worker.name, "queue_name": "amqpmix"}
    # Pool processes flush their event buffers independently: wait for the last of each kind.
    exporter.wait_metric("celery_task_succeeded_total", 1, name="demo.retry", **worker)
    exporter.wait_metric("celery_task_retried_total", k_retries, name="demo.retry", **worker)
    exporter.wait_metric("celery_task_revoked_total", 1, name="demo.sleep", **worker)
    exporter.wait_metric("celery_task_failed_total", m_fail, name="demo.fail", exception="DemoError", **worker)
    exporter.wait_metric("celery_task_rejected_total", r_reject, name="demo.reject", **worker)
    exporter.wait_metric("celery_task_succeeded_total", n_mul, name="demo.mul", **worker)
    # The worker publishes each retry again, with a task-sent of its own (demo.tasks sends them).
    exporter.wait_metric("celery_task_sent_total", 1 + k_retries, name="demo.retry", hostname="generic",
                         queue_name="amqpmix")
    metrics = exporter.wait_metric("celery_task_succeeded_total", n_add, name="demo.add", **worker)
    executions = {"demo.add": n_add, "demo.mul": n_mul, "demo.fail": m_fail, "demo.retry": 1 + k_retries,
                  "demo.reject": r_reject}
    # Producers, and the worker that publishes each retry again, share the generic hostname.
    for name, sent in [("demo.add", n_add), ("demo.mul", n_mul), ("demo.fail", m_fail),
                       ("demo.retry", 1 + k_retries), ("demo.sleep", 1), ("demo.reject", r_reject)]:
        assert metrics.value("celery_task_sent_total", name=name, hostname="generic",
                             queue_name="amqpmix") == sent
    for name, runs in executions.items():
        assert metrics.value("celery_task_received_total", name=name, **worker) == runs
        assert metrics.value("celery_task_started_total", name=name, **worker) == runs
        assert metrics.value("celery_task_queue_wait_time_count", name=name, **worker) == runs
    assert metrics.value("celery_task_succeeded_total", name="demo.fail", **worker) == 0
    assert metrics.value("celery_task_retried_total", name="demo.retry", **worker) == k_retries
    assert metrics.value("celery_task_revoked_total", name="demo.sleep", **worker) == 1
    assert metrics.total("celery_task_revoked_total") == 1
    # Celery (5.7) sends task-failed, then task-rejected, for a Reject(requeue=False): both count.
    assert metrics.value("celery_task_rejected_total", name="demo.reject", **worker) == r_reject
    assert metrics.total("celery_task_rejected_total") == r_reject
    assert metrics.value("celery_task_failed_total", name="demo.reject", exception="Reject", **worker) == r_reject
    assert metrics.value("celery_task_succeeded_total", name="demo.reject", **worker) == 0
    assert metrics.value("celery_task_received_total", name="demo.sleep", **worker) == 0
    finished = {"demo.add": n_add, "demo.mul": n_mul, "demo.fail": m_fail, "demo.retry": 1,
                "demo.reject": r_reject}
    for name, count in finished.items():
        assert metrics.value("celery_task_runtime_count", name=name, **worker) == count
    # Nothing lost its name or queue: every task series is labelled with the queue the task went to.
    assert {l["queue_name"] for l, _ in metrics.matching("celery_task_started_total")} == {"amqpmix"}
    assert {l["name"] for l, v in metrics.matching("celery_task_started_total") if v} == set(executions)
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
