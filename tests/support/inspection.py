"""What workers themselves report, for assertions: pool sizes, consumed queues, task limits."""
from __future__ import annotations

from celery import Celery


def control_app(broker_url: str) -> Celery:
    return Celery("tests-inspection", broker=broker_url, set_as_current=False)


def _ask(app: Celery, worker: str, method: str, *args) -> object:
    replies = getattr(app.control.inspect(destination=[worker], timeout=2, limit=1), method)(*args)
    if not replies or worker not in replies:
        raise AssertionError(f"worker {worker} did not answer inspect {method}")
    return replies[worker]


def pool_size(app: Celery, worker: str) -> int:
    """Processes the worker's pool really has now (prefork starts new ones on a timer)."""
    return len(_ask(app, worker, "stats")["pool"]["processes"])


def pool_concurrency(app: Celery, worker: str) -> int:
    """The pool's size as any pool reports it (solo and threads pools list no processes)."""
    return _ask(app, worker, "stats")["pool"]["max-concurrency"]


def pool_pids(app: Celery, worker: str) -> set[int]:
    return set(_ask(app, worker, "stats")["pool"]["processes"])


def autoscaler(app: Celery, worker: str) -> dict:
    return _ask(app, worker, "stats")["autoscaler"]


def consumed_queues(app: Celery, worker: str) -> set[str]:
    return {queue["name"] for queue in _ask(app, worker, "active_queues")}


def task_info(app: Celery, worker: str, task: str) -> str:
    """``registered`` line of one task with its limits, e.g. ``demo.sleep [rate_limit=200/m ...]``."""
    lines = _ask(app, worker, "registered", "rate_limit", "time_limit", "soft_time_limit")
    return next(line for line in lines if line.split(" ")[0] == task)


def stats(app: Celery, worker: str) -> dict:
    """The worker's whole ``inspect stats`` reply."""
    return _ask(app, worker, "stats")
