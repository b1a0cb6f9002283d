"""Self-healing end to end: real workers, exporter, Prometheus, Alertmanager and actuator.

The shipped alerts/ files (remediation alerts after 1 s instead of minutes, scrape, evaluation
and group_wait 1 s) and the shipped alerts/actuator-rules.yml; nothing is mocked. What healed is
proven by the workers themselves (inspect stats and active_queues), by the broker's queue
lengths and by the tasks the exporter saw finish; who did it, by the actuator's audit log.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from demo.bundle_config import write_actuator_rules
from demo.stack import REMEDIATION_FOR, Autopilot, StackSettings, autopilot
from demo.traffic import send_burst
from tests.support.inspection import consumed_queues, control_app, pool_size
from tests.support.polling import wait_for

pytestmark = pytest.mark.e2e

STARTING_POOL = 2  # the worker's concurrency
MAX_POOL = 10  # track-backlog's max_pool
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


def decisions(loop: Autopilot, rule: str | None, status: str) -> list[dict]:
    """The actuator's decisions on alerts in ``status``, newest first; ``rule`` None: any."""
    actions = loop.actions(rule=rule) if rule else loop.actions()
    return [action for action in actions if action["alert"] and action["alert"]["status"] == status]


SENT = ("ok", "error", "no_reply")  # a worker's outcomes when something was sent to it


def sent_to(decision: dict, worker: str) -> dict | None:
    """What the decision really sent to ``worker`` (command, arguments, outcome), if anything:
    the worker's own command where it differs from the action's (a pool_target's grow)."""
    for result in decision["workers"]:
        if result["worker"] == worker and result["outcome"] in SENT:
            return {"command": result.get("command", decision["command"]),
                    "arguments": result.get("arguments", decision["arguments"]), "outcome": result["outcome"]}
    return None


def pool_commands(loop: Autopilot, worker: str) -> list[tuple[str, str]]:
    """(rule, command) of every pool command sent to ``worker``, oldest first."""
    sent = [(action["rule"], sent_to(action, worker)) for action in reversed(loop.actions())]
    return [(rule, w["command"]) for rule, w in sent if w and w["command"].startswith("pool_")]


def test_a_backlog_grows_the_pool_which_shrinks_back_once_it_drained(broker_url, worker_factory, control,
                                                                      tmp_path, capsys):
    """With the shipped rules (track-backlog's cooldown 90 s: one grow), Alertmanager re-sending
    every 2 s: a first value read while the burst was still being published is followed by the
    full one."""
    worker = worker_factory("grow@e2e", queues=["celery"], concurrency=STARTING_POOL)
    settings = StackSettings(broker_url=broker_url, workdir=tmp_path, for_durations=REMEDIATION_FOR,
                             repeat_interval="2s")
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
        (grow,) = [d for d in decisions(loop, "track-backlog", "firing") if d["outcome"] == "sent"]
        assert grow["command"] == "pool_target", grow
        assert grow["alert"]["labels"]["queue_name"] == "celery"
        asked = min(max(int(grow["arguments"]["size"]), STARTING_POOL), MAX_POOL)
        assert asked > STARTING_POOL, grow
        grew = sent_to(grow, worker.name)
        assert (grew["command"], grew["arguments"]["n"], grew["outcome"]) == (
            "pool_grow", asked - STARTING_POOL, "ok"), grow
        wait_for(lambda: pool_size(control, worker.name) == asked, timeout=20, interval=0.2,
                 what=f"the worker's own stats to show the {asked} processes target tracking asked for")

        wait_for(lambda: queue_length(broker_url, "celery") == 0, timeout=40, interval=0.2,
                 what="the backlog to drain")
        wait_for(lambda: pool_size(control, worker.name) == STARTING_POOL, timeout=40, interval=0.2,
                 what="the worker's own stats to show the pool back at its starting size")
        (shrink,) = [d for d in decisions(loop, "shrink-overprovisioned-pool", "firing") if d["outcome"] == "sent"]
        assert (shrink["command"], shrink["outcome"]) == ("pool_shrink", "sent"), shrink
        assert shrink["alert"]["labels"]["hostname"] == worker.name
        shrank = sent_to(shrink, worker.name)
        assert (shrank["arguments"]["n"], shrank["outcome"]) == (asked - STARTING_POOL, "ok"), shrink
        # Nobody else touched the pool: the resolved backlog did nothing.
        assert pool_commands(loop, worker.name) == [("track-backlog", "pool_grow"),
                                                    ("shrink-overprovisioned-pool", "pool_shrink")]
        wait_for(lambda: decisions(loop, None, "resolved"), timeout=30, interval=0.2,
                 what="the resolved backlog alert at the actuator")
        assert all(not action["workers"] for action in decisions(loop, None, "resolved"))
        wait_for(lambda: finished(loop, 'name="demo.sleep"') == BURST, timeout=20, interval=0.2,
                 what=f"the exporter to have seen all {BURST} tasks succeed")


def test_the_pool_follows_a_growing_backlog_and_a_small_one_never_shrinks_a_bigger_pool(
        broker_url, worker_factory, control, tmp_path):
    """Alertmanager sends the firing alert again (every 2 s here) with its current value: each
    new value is a new decision. A worker started with -c 6 keeps its 6 processes although its
    backlog asks for 2."""
    tracked = worker_factory("tracked@e2e", queues=["tracked"], concurrency=STARTING_POOL)
    big = worker_factory("big@e2e", queues=["big"], concurrency=6)
    rules = write_actuator_rules(tmp_path / "rules", cooldowns={"track-backlog": "1s"})
    settings = StackSettings(broker_url=broker_url, workdir=tmp_path, rules=rules, for_durations=REMEDIATION_FOR,
                             repeat_interval="2s")
    with autopilot(settings) as loop:
        wait_for(lambda: len(loop.prometheus.query('celery_worker_pool_processes{hostname=~".+@e2e"}')) == 2,
                 timeout=30, interval=0.2, what="Prometheus to see both pools")
        send_burst(broker_url, "tracked", tasks=350, task_seconds=1)
        send_burst(broker_url, "big", tasks=250, task_seconds=1)

        wait_for(lambda: pool_size(control, tracked.name) == 3, timeout=40, interval=0.2,
                 what="a backlog of about 350 to grow the pool to 3")
        send_burst(broker_url, "tracked", tasks=600, task_seconds=1)

        def grows() -> list[tuple[str, int]]:
            sent = [sent_to(d, tracked.name) for d in reversed(decisions(loop, "track-backlog", "firing"))]
            return [(w["command"], w["arguments"]["n"]) for w in sent if w]
        # The new value may be seen in one step (about 900: target 9) or two (the burst half
        # published): the pool follows, by grows only, to at least 8.
        wait_for(lambda: STARTING_POOL + sum(n for _, n in grows()) >= 8, timeout=40, interval=0.2,
                 what="grows up to the backlog of about 900")
        steps = grows()
        assert steps[0] == ("pool_grow", 1) and len(steps) >= 2, steps
        assert all(command == "pool_grow" and n > 0 for command, n in steps), steps
        asked = STARTING_POOL + sum(n for _, n in steps)
        wait_for(lambda: pool_size(control, tracked.name) == asked, timeout=20, interval=0.2,
                 what=f"the worker's own stats to show the {asked} processes asked for")

        big_decisions = [d for d in decisions(loop, "track-backlog", "firing")
                         if d["alert"]["labels"]["queue_name"] == "big"]
        assert len(big_decisions) >= 2, "the big worker's backlog was decided on, more than once"
        assert not any(sent_to(d, big.name) for d in big_decisions), big_decisions
        assert pool_size(control, big.name) == 6


def test_a_queue_without_consumers_is_adopted_by_a_healthy_worker(broker_url, worker_factory, control, tmp_path):
    """The exporter is not told about queue reports (--queues celery): it found it consumed, and
    remembers it after its only consumer is cancelled."""
    healthy = worker_factory("healthy@e2e", queues=["celery"], concurrency=2)
    lonely = worker_factory("reports@e2e", queues=["reports"], concurrency=1)
    settings = StackSettings(broker_url=broker_url, workdir=tmp_path, for_durations=REMEDIATION_FOR)
    assert settings.queues == ("celery",)
    with autopilot(settings) as loop:
        wait_for(lambda: loop.prometheus.query('celery_worker_consumer{queue_name="reports"}'), timeout=30,
                 interval=0.2, what="Prometheus to see queue reports consumed")
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
