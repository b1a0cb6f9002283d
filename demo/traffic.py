"""The demo's traffic: a burst of real ``demo.sleep`` tasks, more than its small pool can take."""
from __future__ import annotations

from celery import Celery


def send_burst(broker_url: str, queue: str, *, tasks: int, task_seconds: float) -> None:
    """Publish ``tasks`` tasks of ``task_seconds`` each to ``queue`` over one connection."""
    app = Celery("demo-traffic", broker=broker_url, set_as_current=False)
    app.conf.task_send_sent_event = True
    try:
        with app.connection_for_write() as connection:
            for _ in range(tasks):
                app.send_task("demo.sleep", (task_seconds,), queue=queue, connection=connection)
    finally:
        app.close()


def purge(broker_url: str, queue: str) -> int:
    """Drop what an interrupted earlier run left in the demo's own queue; returns how many."""
    app = Celery("demo-traffic", broker=broker_url, set_as_current=False)
    try:
        with app.connection_for_write() as connection:
            return connection.default_channel.queue_purge(queue) or 0
    finally:
        app.close()
