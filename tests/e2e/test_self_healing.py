"""Self-healing end to end: real workers, exporter, Prometheus, Alertmanager and actuator.

The shipped alerts/ files (remediation alerts after 1 s instead of minutes, scrape, evaluation
and group_wait 1 s) and the shipped alerts/actuator-rules.yml; nothing is mocked. What healed is
proven by the workers themselves (inspect stats and active_queues), by the broker's queue
lengths and by the tasks the exporter saw finish.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from demo.stack import REMEDIATION_FOR, Autopilot, StackSettings, autopilot
from demo.traffic import send_burst
from tests.support.inspection import consumed_queues, control_app, pool_size
from tests.support.polling import wait_for

pytestmark = pytest.mark.e2e

STARTING_POOL = 2  # the worker's concurrency, and the rules' min_pool
BURST = 1000  # tasks: target tracking asks for min(10, queue length // 100) processes


@pytest.fixture
def control(broker_url) -> Iterator[Celery]:
    app = control_app(broker_url)
    yield app
    app.close()


def queue_length(broker_url: str, queue: str) -> int:
    return redis.Redis.from_url(broker_url).llen(queue)


def finished(loop: Autopilot, selector: str) -> float:
    result = loop.prometheus.query(f"sum(celery_task_succeeded_total{{{selector}}})")
    return float(result[0]["value"][1]) if result else 0.0


def decisions(loop: Autopilot, rule: str, status: str) -> list[dict]:
    return [action for action in loop.actions(rule=rule) if action["alert"]["status"] == status]


def test_a_backlog_grows_the_pool_which_shrinks_back_once_it_drained(broker_url, worker_factory, control,
                                                                      tmp_path, capsys):
    worker = worker_factory("grow@e2e", queues=["celery"], concurrency=STARTING_POOL)
    settings = StackSettings(broker_url=broker_url, workdir=tmp_path, for_durations=REMEDIATION_FOR)
    with autopilot(settings) as loop:
        wait_for(lambda: loop.prometheus.query('celery_worker_pool_processes{hostname="grow@e2e"} == 2'),
                 timeout=30, interval=0.2, what="Prometheus to see the worker's pool")
        started = time.monotonic()
        send_burst(broker_url, "celery", tasks=BURST, task_seconds=0.05)

        grown = wait_for(lambda: (size := pool_size(control, worker.name)) > STARTING_POOL and size, timeout=40,
                         interval=0.2, what="the worker's own stats to show a grown pool")
        grown_after = time.monotonic() - started
        with capsys.disabled():
            print(f"\n[e2e] backlog of {BURST} tasks to grown pool ({STARTING_POOL} -> {grown} processes): "
                  f"{grown_after:.1f} s")
        (grow,) = decisions(loop, "track-backlog", "firing")
        assert (grow["command"], grow["outcome"]) == ("pool_target", "sent"), grow
        assert [(w["worker"], w["outcome"]) for w in grow["workers"]] == [(worker.name, "ok")], grow
        assert grow["alert"]["labels"]["queue_name"] == "celery"

        wait_for(lambda: queue_length(broker_url, "celery") == 0, timeout=40, interval=0.2,
                 what="the backlog to drain")
        wait_for(lambda: decisions(loop, "settle-after-backlog", "resolved"), timeout=30, interval=0.2,
                 what="the resolved backlog alert at the actuator")
        wait_for(lambda: pool_size(control, worker.name) == STARTING_POOL, timeout=40, interval=0.2,
                 what="the worker's own stats to show the pool back at its minimum")
        (settle,) = decisions(loop, "settle-after-backlog", "resolved")
        assert settle["command"] == "pool_target" and settle["workers"][0]["worker"] == worker.name, settle
        wait_for(lambda: finished(loop, 'name="demo.sleep"') == BURST, timeout=20, interval=0.2,
                 what=f"the exporter to have seen all {BURST} tasks succeed")


def test_a_queue_without_consumers_is_adopted_by_a_healthy_worker(broker_url, worker_factory, control, tmp_path):
    healthy = worker_factory("healthy@e2e", queues=["celery"], concurrency=2)
    lonely = worker_factory("reports@e2e", queues=["reports"], concurrency=1)
    settings = StackSettings(broker_url=broker_url, workdir=tmp_path, queues=("celery", "reports"),
                             for_durations=REMEDIATION_FOR)
    with autopilot(settings) as loop:
        reply = control.control.cancel_consumer("reports", destination=[lonely.name], reply=True)
        assert reply == [{lonely.name: {"ok": "no longer consuming from reports"}}]
        send_burst(broker_url, "reports", tasks=30, task_seconds=0)

        (alert,) = loop.prometheus.wait_for_alert("CeleryQueueNoConsumers", timeout=30)
        assert alert["labels"]["queue_name"] == "reports"
        wait_for(lambda: "reports" in consumed_queues(control, healthy.name), timeout=30, interval=0.2,
                 what=f"{healthy.name} to consume queue reports")
        wait_for(lambda: queue_length(broker_url, "reports") == 0, timeout=30, interval=0.2,
                 what="queue reports to drain")
        wait_for(lambda: finished(loop, f'queue_name="reports", hostname="{healthy.name}"') == 30, timeout=20,
                 interval=0.2, what=f"the exporter to have seen {healthy.name} run the 30 tasks")
        assert consumed_queues(control, lonely.name) == set()
        (adopt,) = decisions(loop, "adopt-orphaned-queue", "firing")
        assert (adopt["command"], adopt["arguments"]["queue"], adopt["outcome"]) == ("add_consumer", "reports", "sent")
        assert [(w["worker"], w["outcome"]) for w in adopt["workers"]] == [(healthy.name, "ok")], adopt
