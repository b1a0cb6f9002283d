"""Tasks for the demo worker and for the integration tests.

The broker comes from ``CELERY_BROKER_URL`` so that tests can point a worker subprocess at a
private Redis or RabbitMQ. Events are on (``-E`` is not needed) and ``task-sent`` events are sent,
so the exporter can label every task with its queue.
"""
from __future__ import annotations

import os
import time

from celery import Celery
from celery.exceptions import Reject

app = Celery("demo", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    # DEMO_WORKER_EVENTS=0 starts a worker that sends no events until told to (enable_events).
    worker_send_task_events=os.environ.get("DEMO_WORKER_EVENTS", "1") != "0",
    # DEMO_SENT_EVENTS=0: no task-sent events, as in Celery's default (retries are published by
    # the worker with this setting).
    task_send_sent_event=os.environ.get("DEMO_SENT_EVENTS", "1") != "0",
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_queue_max_priority=int(os.environ.get("DEMO_QUEUE_MAX_PRIORITY", "0")) or None,
    # Off by default, as in Celery; on where a test or the demo restarts pools remotely.
    worker_pool_restarts=os.environ.get("DEMO_POOL_RESTARTS") == "1",
    # A non-default remote-control exchange, which `celery -A demo.tasks exporter` must follow.
    control_exchange=os.environ.get("DEMO_CONTROL_EXCHANGE", "celery"),
)


class DemoError(Exception):
    """The exception ``fail`` raises, so tests can assert on the exception label."""


@app.task(name="demo.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="demo.mul")
def mul(x: int, y: int) -> int:
    return x * y


@app.task(name="demo.fail")
def fail() -> None:
    raise DemoError("boom")


@app.task(name="demo.reject", acks_late=True)
def reject() -> None:
    """Rejects its message without requeueing it (acks_late, so there is a message to reject):
    one task-rejected event (Celery 5.7 sends a task-failed before it)."""
    raise Reject("demo rejection", requeue=False)


@app.task(name="demo.retry", bind=True, max_retries=5, default_retry_delay=0)
def retry(self, times: int) -> int:
    """Retries ``times`` times, then succeeds: K retries are exactly K task-retried events."""
    if self.request.retries < times:
        raise self.retry(countdown=0)
    return self.request.retries


@app.task(name="demo.retry_later", bind=True, max_retries=5)
def retry_later(self, times: int, countdown: float) -> int:
    """Like ``retry``, with each retry scheduled ``countdown`` seconds later."""
    if self.request.retries < times:
        raise self.retry(countdown=countdown)
    return self.request.retries


@app.task(name="demo.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="tasks.sleep")
def article_sleep(seconds: float) -> float:
    """The task the Flower article's curl commands tune, under the name the article uses."""
    time.sleep(seconds)
    return seconds
