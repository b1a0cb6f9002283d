"""The known mix of tasks the broker integration tests run, and what the exporter must count.

One scenario for every broker (tests/exporter/test_redis_integration.py, test_amqp_integration.py),
so that "the same checks over amqp://" stays the same checks.
"""
from __future__ import annotations

import uuid

from celery import Celery

from tests.support.exporter import ExporterProcess, Metrics

N_ADD, N_MUL, M_FAIL, K_RETRIES, R_REJECT = 5, 3, 2, 2, 3
# Runs per task name: each retry runs the task again.
EXECUTIONS = {"demo.add": N_ADD, "demo.mul": N_MUL, "demo.fail": M_FAIL, "demo.retry": 1 + K_RETRIES,
              "demo.reject": R_REJECT}
# task-sent per name: producers, and the worker that publishes each retry again.
SENT = {**EXECUTIONS, "demo.sleep": 1}
# Tasks that finished (one runtime each): a retried task finishes once.
FINISHED = {**EXECUTIONS, "demo.retry": 1}


def send_known_mix(app: Celery, worker_name: str, queue: str) -> None:
    """Successes of two names, failures, one task retried K times, rejections, and a demo.sleep
    revoked before it is sent (the worker drops it on receipt with a nameless task-revoked)."""
    for i in range(N_ADD):
        app.send_task("demo.add", args=(i, i), queue=queue)
    for i in range(N_MUL):
        app.send_task("demo.mul", args=(i, 2), queue=queue)
    for _ in range(M_FAIL):
        app.send_task("demo.fail", queue=queue)
    app.send_task("demo.retry", args=(K_RETRIES,), queue=queue)
    for _ in range(R_REJECT):
        app.send_task("demo.reject", queue=queue)
    revoked_id = str(uuid.uuid4())
    replies = app.control.revoke(revoked_id, destination=[worker_name], reply=True, timeout=5)
    assert replies, "the worker did not acknowledge the revoke"
    app.send_task("demo.sleep", args=(0,), queue=queue, task_id=revoked_id)


def check_known_mix(exporter: ExporterProcess, worker_name: str, queue: str) -> Metrics:
    """Every counter and histogram count equals what the known mix really did; the scrape checked."""
    worker = {"hostname": worker_name, "queue_name": queue}
    # Pool processes flush their event buffers independently: wait for the last of each kind.
    exporter.wait_metric("celery_task_succeeded_total", 1, name="demo.retry", **worker)
    exporter.wait_metric("celery_task_retried_total", K_RETRIES, name="demo.retry", **worker)
    exporter.wait_metric("celery_task_revoked_total", 1, name="demo.sleep", **worker)
    exporter.wait_metric("celery_task_failed_total", M_FAIL, name="demo.fail", exception="DemoError", **worker)
    exporter.wait_metric("celery_task_rejected_total", R_REJECT, name="demo.reject", **worker)
    exporter.wait_metric("celery_task_succeeded_total", N_MUL, name="demo.mul", **worker)
    # The worker publishes each retry again, with a task-sent of its own (demo.tasks sends them).
    exporter.wait_metric("celery_task_sent_total", 1 + K_RETRIES, name="demo.retry", hostname="generic",
                         queue_name=queue)
    metrics = exporter.wait_metric("celery_task_succeeded_total", N_ADD, name="demo.add", **worker)
    # Producers, and the worker that publishes each retry again, share the generic hostname.
    for name, sent in SENT.items():
        assert metrics.value("celery_task_sent_total", name=name, hostname="generic", queue_name=queue) == sent
    for name, runs in EXECUTIONS.items():
        assert metrics.value("celery_task_received_total", name=name, **worker) == runs
        assert metrics.value("celery_task_started_total", name=name, **worker) == runs
        assert metrics.value("celery_task_queue_wait_time_count", name=name, **worker) == runs
    assert metrics.value("celery_task_succeeded_total", name="demo.mul", **worker) == N_MUL
    assert metrics.value("celery_task_succeeded_total", name="demo.fail", **worker) == 0
    assert metrics.value("celery_task_retried_total", name="demo.retry", **worker) == K_RETRIES
    assert metrics.value("celery_task_revoked_total", name="demo.sleep", **worker) == 1
    assert metrics.total("celery_task_revoked_total") == 1
    # Celery (5.7) sends task-failed, then task-rejected, for a Reject(requeue=False): both count.
    assert metrics.value("celery_task_rejected_total", name="demo.reject", **worker) == R_REJECT
    assert metrics.total("celery_task_rejected_total") == R_REJECT
    assert metrics.value("celery_task_failed_total", name="demo.reject", exception="Reject", **worker) == R_REJECT
    assert metrics.value("celery_task_succeeded_total", name="demo.reject", **worker) == 0
    assert metrics.value("celery_task_received_total", name="demo.sleep", **worker) == 0
    for name, count in FINISHED.items():
        assert metrics.value("celery_task_runtime_count", name=name, **worker) == count
    # Nothing lost its name or queue: every task series is labelled with the queue the task went to.
    assert {l["queue_name"] for l, _ in metrics.matching("celery_task_started_total")} == {queue}
    assert {l["name"] for l, v in metrics.matching("celery_task_started_total") if v} == set(EXECUTIONS)
    return metrics
