"""The guards end to end: ``autopilot-actuator serve`` subprocesses (real HTTP), a real Redis broker
and real prefork workers. Every claim is proved by what the workers report (pool sizes, task rate
limits) and by what the audit log recorded.

Prefork starts every pending process at once, so "the pool grew by exactly n" is proved by
waiting until it grew and then finding it grew by n: an extra grow sent earlier would show at the
same moment.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp
import pytest
import requests

from actuator.guard_state import MANUAL_KEY, PoolExpectation, Reservation
from actuator.services import SERVICES
from actuator.settings import ControlSettings, GuardSettings
from tests.actuator.conftest import AUTH, AUTH_HEADERS, decisions, post
from tests.actuator.payloads import alert, new_start, notification
from tests.support.exporter import Metrics
from tests.support.inspection import autoscaler, pool_size, task_info
from tests.support.polling import wait_for
from tests.support.redis_server import RedisServer

GROW = "grow@guards"
BOUNDS = "bounds@guards"
TARGET = "target@guards"
AUTOSCALING = "auto@guards"
RATES = "rates@guards"
BUSY = "busy@guards"

RULES = """
    rules:
      - name: grow
        match: {alertname: GrowPool}
        actions:
          - {command: pool_grow, workers: {consuming: "{{ labels.queue_name }}"}, n: "{{ annotations.n }}"}
      - name: rehearse
        match: {alertname: Rehearse}
        dry_run: true
        actions:
          - {command: pool_target, workers: {consuming: "{{ labels.queue_name }}"}, size: 50,
             min_pool: 1, max_pool: 9}
      - name: shrink
        match: {alertname: ShrinkPool}
        actions:
          - {command: pool_shrink, workers: {consuming: "{{ labels.queue_name }}"}, n: 1}
      - name: bounded-grow
        match: {alertname: BoundedGrow}
        actions:
          - {command: pool_grow, workers: {consuming: "{{ labels.queue_name }}"}, n: "{{ annotations.n }}",
             max_pool: 4}
      - name: bounded-shrink
        match: {alertname: BoundedShrink}
        actions:
          - {command: pool_shrink, workers: {consuming: "{{ labels.queue_name }}"}, n: "{{ annotations.n }}",
             min_pool: 2}
      # The article's autoscaling script as one rule: one process per 100 waiting messages, 2..8.
      # It only grows: a smaller backlog re-sent later never shrinks a pool a bigger one grew.
      - name: track-backlog
        match: {alertname: CeleryQueueBacklog}
        on: firing
        actions:
          - command: pool_target
            workers: {consuming: "{{ labels.queue_name }}"}
            size: "{{ (value / 100) | round(0, 'ceil') | int }}"
            min_pool: 2
            max_pool: 8
            direction: up
      # The same script tracking both ways: an empty queue brings the pool back to min_pool.
      - name: track-both-ways
        match: {alertname: TrackedBacklog}
        actions:
          - command: pool_target
            workers: {consuming: "{{ labels.queue_name }}"}
            size: "{{ (value / 100) | round(0, 'ceil') | int }}"
            min_pool: 2
            max_pool: 8
            direction: both
      # Resolved notifications carry the last firing annotations (a value above the threshold),
      # so settling back is a rule of its own with a literal size.
      - name: settle-after-backlog
        match: {alertname: CeleryQueueBacklog}
        on: resolved
        actions:
          - {command: pool_target, workers: {consuming: "{{ labels.queue_name }}"}, size: 2, min_pool: 2,
             max_pool: 8, direction: down}
      - name: throttle
        match: {alertname: Throttle}
        cooldown: 2s
        actions:
          - {command: rate_limit, workers: {name: "{{ labels.hostname }}"}, task: "{{ labels.task }}",
             rate_limit: "{{ annotations.rate }}"}
      - name: throttle-and-time
        match: {alertname: ThrottleAndTime}
        cooldown: 5m
        actions:
          - {command: rate_limit, workers: {name: "{{ labels.hostname }}"}, task: "{{ labels.task }}",
             rate_limit: "{{ annotations.rate }}"}
          - {command: time_limit, workers: {name: "{{ labels.hostname }}"}, task: "{{ labels.task }}",
             soft: 30, hard: 60}
      - name: budgeted
        match: {alertname: Budgeted}
        max_actions_per_hour: 2
        actions:
          - {command: rate_limit, workers: {name: "{{ labels.hostname }}"}, task: "{{ labels.task }}",
             rate_limit: "{{ annotations.rate }}"}
"""


@pytest.fixture(scope="module")
def workers(start_workers):
    started = start_workers({"name": GROW, "queues": ["grow-q"]},
                            {"name": BOUNDS, "queues": ["bounds-q"]},
                            {"name": TARGET, "queues": ["target-q"]},
                            {"name": AUTOSCALING, "queues": ["auto-q"], "extra_args": ["--autoscale=4,2"]},
                            {"name": RATES, "queues": ["rates-q"], "concurrency": 1},
                            {"name": BUSY, "queues": ["busy-q"], "extra_args": ["--disable-prefetch"]})
    return {worker.name: worker for worker in started}


@pytest.fixture(scope="module")
def actuator(workers, start_actuator):
    return start_actuator(RULES)


def grow(queue: str, n: int, starts_at: str, alertname: str = "GrowPool") -> dict:
    return notification(alert({"alertname": alertname, "queue_name": queue}, annotations={"n": str(n)},
                              starts_at=starts_at))


def limit(alertname: str, task: str, rate: str, starts_at: str) -> dict:
    return notification(alert({"alertname": alertname, "hostname": RATES, "task": task},
                              annotations={"rate": rate}, starts_at=starts_at))


def backlog(queue: str, length: int, starts_at: str, status: str = "firing",
            alertname: str = "CeleryQueueBacklog") -> dict:
    """A CeleryQueueBacklog notification; a resolved one carries the last firing value, as
    Prometheus sends it."""
    return notification(alert({"alertname": alertname, "queue_name": queue},
                              annotations={"value": str(length)}, starts_at=starts_at, status=status))


def busy(inspector, seconds: float) -> None:
    """Keep both of BUSY's processes on a task for ``seconds``."""
    for _ in range(2):
        inspector.send_task("demo.sleep", args=[seconds], queue="busy-q")
    wait_for(lambda: len(inspector.control.inspect(destination=[BUSY], timeout=1, limit=1).active().get(BUSY) or [])
             == 2, timeout=10, what=f"{BUSY} to run two demo.sleep")


def only_action(answer: requests.Response) -> dict:
    assert answer.status_code == 200, answer.text
    (alert_report,) = answer.json()["alerts"]
    (action,) = alert_report["actions"]
    return action


async def only_action_of(client, body: dict) -> dict:
    """POST to an in-process actuator; the only action of its only alert."""
    answer = await client.post("/webhook", json=body, headers=AUTH_HEADERS)
    (action,) = (await answer.json())["alerts"][0]["actions"]
    return action


def grows_to(inspector, worker: str, size: int) -> None:
    """Wait until the pool grew to at least ``size``, then it must be exactly ``size``."""
    seen = wait_for(lambda: (now := pool_size(inspector, worker)) >= size and now, timeout=20,
                    what=f"{worker} to reach {size} processes")
    assert seen == size, f"{worker} has {seen} processes; expected exactly {size}"


def settles_at(inspector, worker: str, size: int) -> None:
    wait_for(lambda: pool_size(inspector, worker) == size, timeout=20, what=f"{worker} to settle at {size}")


def metric(actuator, name: str, **labels: str) -> float | None:
    return Metrics(requests.get(f"{actuator.url}/metrics", timeout=5).text).value(name, **labels)


def suppressed(actuator, rule: str, reason: str) -> float | None:
    return metric(actuator, "celery_actuator_suppressions_total", rule=rule, reason=reason)


def latency(actuator, command: str) -> tuple[float, float]:
    """(_count, _sum) of the action-latency histogram of ``command`` (it has no rule label)."""
    scrape = Metrics(requests.get(f"{actuator.url}/metrics", timeout=5).text)
    name = "celery_actuator_action_duration_seconds"
    return scrape.value(f"{name}_count", command=command) or 0.0, scrape.value(f"{name}_sum", command=command) or 0.0


def test_every_decision_a_rule_can_make_is_a_series_from_the_start(actuator):
    """increase() needs a series before its first sample: the dashboard's action annotations
    would miss the first action of every rule otherwise."""
    scrape = Metrics(requests.get(f"{actuator.url}/metrics", timeout=5).text)
    for rule, command in (("grow", "pool_grow"), ("track-backlog", "pool_target"), ("throttle", "rate_limit"),
                          ("throttle-and-time", "time_limit"), ("api", "pool_shrink"), ("api", "rate_limit")):
        for outcome in ("sent", "failed", "suppressed", "no_targets", "broker_unavailable"):
            assert scrape.value("celery_actuator_actions_total", rule=rule, command=command, outcome=outcome) == 0
    expected = {"grow": {"duplicate", "paused", "bounds"},
                "track-backlog": {"duplicate", "paused", "bounds", "at_target"},
                "throttle": {"duplicate", "paused", "cooldown"}, "budgeted": {"duplicate", "paused", "budget"},
                "api": {"paused", "bounds"}}
    for rule, reasons in expected.items():
        found = {labels["reason"] for labels, value in scrape.matching("celery_actuator_suppressions_total", rule=rule)
                 if value == 0}
        assert found == reasons, rule
    assert scrape.value("celery_actuator_notifications_total", status="firing") == 0


def test_a_thousand_identical_notifications_act_once(actuator, inspector):
    before = pool_size(inspector, GROW)
    count_before, sum_before = latency(actuator, "pool_grow")
    body = grow("grow-q", 2, new_start())

    async def send_all() -> list[int]:
        async with aiohttp.ClientSession(headers=AUTH_HEADERS, timeout=aiohttp.ClientTimeout(total=120)) as session:
            async def send() -> int:
                async with session.post(f"{actuator.url}/webhook", json=body) as answer:
                    await answer.read()
                    return answer.status
            return await asyncio.gather(*(send() for _ in range(1000)))

    started = time.monotonic()
    statuses = asyncio.run(send_all())
    elapsed = time.monotonic() - started
    assert statuses == [200] * 1000
    grows_to(inspector, GROW, before + 2)
    recorded = decisions(actuator, fingerprint=body["alerts"][0]["fingerprint"], limit="1000")
    assert len(recorded) == 1000
    sent = [r for r in recorded if r["outcome"] == "sent"]
    duplicates = [r for r in recorded if r["guards"] == ["duplicate"]]
    assert len(sent) == 1 and len(duplicates) == 999
    assert {(r["outcome"], r["reason"].split(":")[0]) for r in duplicates} == {("suppressed", "duplicate")}
    assert len(decisions(actuator, reason="duplicate", rule="grow", limit="1000")) == 999
    assert suppressed(actuator, "grow", "duplicate") == 999
    # The latency histogram has one sample, the sent action's (duplicates are held before acting),
    # and it is the duration the audit log recorded.
    count_after, sum_after = latency(actuator, "pool_grow")
    assert count_after - count_before == 1
    assert sum_after - sum_before == pytest.approx(sent[0]["duration_seconds"], abs=1e-6)
    assert sent[0]["duration_seconds"] > 0
    print(f"1000 concurrent identical notifications answered in {elapsed:.2f}s")


def test_cooldown_suppresses_a_new_occurrence_which_acts_when_sent_again_after_it(actuator, inspector):
    assert only_action(post(actuator, limit("Throttle", "demo.add", "1/m", new_start())))["outcome"] == "sent"
    held = limit("Throttle", "demo.add", "2/m", new_start())
    second = only_action(post(actuator, held))
    assert (second["outcome"], second["guards"]) == ("suppressed", ["cooldown"])
    assert second["workers"][0]["guard"] == "cooldown" and "cooldown 2s" in second["reason"]
    assert task_info(inspector, RATES, "demo.add") == "demo.add [rate_limit=1/m]"
    assert suppressed(actuator, "throttle", "cooldown") == 1
    # A cooldown passes: the held notification kept no claim, so Alertmanager's next send of it
    # acts once the cooldown is over (and not before).
    answers = []
    wait_for(lambda: answers.append(only_action(post(actuator, held))) or answers[-1]["outcome"] == "sent",
             timeout=10, interval=0.2, what="the 2 s cooldown to expire")
    assert {a["guards"][0] for a in answers[:-1]} <= {"cooldown"}
    assert task_info(inspector, RATES, "demo.add") == "demo.add [rate_limit=2/m]"
    assert only_action(post(actuator, held))["guards"] == ["duplicate"]


def test_each_action_of_a_rule_has_its_own_cooldown(actuator, inspector):
    """A rule's second action on a worker is not held by the command its first one just sent."""
    body = limit("ThrottleAndTime", "demo.reject", "5/m", new_start())
    answer = post(actuator, body)
    actions = answer.json()["alerts"][0]["actions"]
    assert [(a["command"], a["outcome"]) for a in actions] == [("rate_limit", "sent"), ("time_limit", "sent")]
    assert task_info(inspector, RATES, "demo.reject") == \
        "demo.reject [rate_limit=5/m time_limit=60.0 soft_time_limit=30.0]"
    later = post(actuator, limit("ThrottleAndTime", "demo.reject", "6/m", new_start())).json()["alerts"][0]["actions"]
    assert [a["guards"] for a in later] == [["cooldown"], ["cooldown"]]
    assert "rule 'throttle-and-time' (action 2) acted on" in later[1]["reason"]


def test_the_action_past_the_rules_budget_is_suppressed(actuator, inspector):
    outcomes = [only_action(post(actuator, limit("Budgeted", "demo.mul", f"{i}/m", new_start())))
                for i in (1, 2, 3)]
    assert [a["outcome"] for a in outcomes] == ["sent", "sent", "suppressed"]
    assert outcomes[2]["guards"] == ["budget"]
    assert outcomes[2]["reason"] == ("budget: rule 'budgeted' took 2 actions in the last hour; "
                                     "its max_actions_per_hour is 2")
    assert task_info(inspector, RATES, "demo.mul") == "demo.mul [rate_limit=2/m]"
    assert suppressed(actuator, "budgeted", "budget") == 1


def test_bounds_clip_grows_and_shrinks(actuator, inspector):
    assert pool_size(inspector, BOUNDS) == 2
    clipped = only_action(post(actuator, grow("bounds-q", 5, new_start(), "BoundedGrow")))
    assert clipped["outcome"] == "sent" and clipped["arguments"] == {"n": 5}
    assert clipped["workers"] == [{"worker": BOUNDS, "outcome": "ok", "detail": "pool will grow",
                                   "command": "pool_grow", "arguments": {"n": 2},
                                   "note": "n clipped from 5 to 2: pool has 2 processes, max_pool is 4"}]
    grows_to(inspector, BOUNDS, 4)
    at_max = only_action(post(actuator, grow("bounds-q", 1, new_start(), "BoundedGrow")))
    assert (at_max["outcome"], at_max["guards"]) == ("suppressed", ["bounds"])
    assert at_max["reason"] == f"bounds: pool of {BOUNDS} has 4 processes and max_pool is 4: grow by 1 clipped to 0"
    # Shrinking by 5 from 4 with min_pool 2 shrinks by 2. Had the grow at max been sent, the
    # pool would have 5 processes and this would leave 3.
    shrunk = only_action(post(actuator, grow("bounds-q", 5, new_start(), "BoundedShrink")))
    assert shrunk["workers"][0]["arguments"] == {"n": 2} and shrunk["outcome"] == "sent"
    settles_at(inspector, BOUNDS, 2)
    at_min = only_action(post(actuator, grow("bounds-q", 1, new_start(), "BoundedShrink")))
    assert (at_min["outcome"], at_min["guards"]) == ("suppressed", ["bounds"])
    assert "has 2 processes and min_pool is 2: shrink by 1 clipped to 0" in at_min["reason"]
    assert suppressed(actuator, "bounded-grow", "bounds") == 1 and suppressed(actuator, "bounded-shrink", "bounds") == 1
    # Had the shrink at min been sent, the pool would have 1 process and this would leave 2.
    assert only_action(post(actuator, grow("bounds-q", 1, new_start(), "BoundedGrow")))["outcome"] == "sent"
    grows_to(inspector, BOUNDS, 3)


def test_target_tracking_follows_the_value_of_each_send(actuator, inspector):
    """The same notification acts once; the same alert re-sent with a new value is a new decision."""
    assert pool_size(inspector, TARGET) == 2
    starts_at = new_start()
    first = only_action(post(actuator, backlog("target-q", 300, starts_at)))
    assert (first["command"], first["arguments"], first["outcome"]) == ("pool_target", {"size": 3}, "sent")
    assert (first["workers"][0]["command"], first["workers"][0]["arguments"]) == ("pool_grow", {"n": 1})
    grows_to(inspector, TARGET, 3)
    again = only_action(post(actuator, backlog("target-q", 300, starts_at)))
    assert (again["outcome"], again["guards"]) == ("suppressed", ["duplicate"]) and "value 300" in again["reason"]
    up = only_action(post(actuator, backlog("target-q", 1000, starts_at)))
    assert (up["workers"][0]["command"], up["workers"][0]["arguments"]) == ("pool_grow", {"n": 5})
    assert up["workers"][0]["note"] == ("target 8 (size 10 within min_pool 2, max_pool 8); pool had 3 processes")
    grows_to(inspector, TARGET, 8)
    steady = only_action(post(actuator, backlog("target-q", 1200, starts_at)))
    assert (steady["outcome"], steady["guards"]) == ("suppressed", ["at_target"])
    # direction: up — a smaller backlog does not shrink what a bigger one grew.
    smaller = only_action(post(actuator, backlog("target-q", 300, new_start())))
    assert (smaller["outcome"], smaller["guards"]) == ("suppressed", ["at_target"])
    assert "at least the target 3" in smaller["reason"] and "direction: up only grows" in smaller["reason"]
    assert suppressed(actuator, "track-backlog", "at_target") == 2
    # Resolved, as Prometheus sends it: the last firing value (1200, target 8) is still in the
    # annotations; the settle rule's literal size brings the pool back to its minimum.
    down = only_action(post(actuator, backlog("target-q", 1200, starts_at, status="resolved")))
    assert (down["rule"], down["workers"][0]["command"], down["workers"][0]["arguments"]) == \
        ("settle-after-backlog", "pool_shrink", {"n": 6})
    settles_at(inspector, TARGET, 2)
    resent = only_action(post(actuator, backlog("target-q", 1200, starts_at, status="resolved")))
    assert (resent["outcome"], resent["guards"]) == ("suppressed", ["duplicate"])


def test_target_tracking_both_ways_brings_an_empty_queues_pool_to_min_pool(actuator, inspector):
    """The issue's "length 0 -> pool set to 2" by the tracking rule itself (no settle rule): the
    same alert re-sent with an empty queue shrinks the pool it grew."""
    assert pool_size(inspector, TARGET) == 2
    starts_at = new_start()
    up = only_action(post(actuator, backlog("target-q", 400, starts_at, alertname="TrackedBacklog")))
    assert (up["rule"], up["workers"][0]["command"], up["workers"][0]["arguments"]) == \
        ("track-both-ways", "pool_grow", {"n": 2})
    grows_to(inspector, TARGET, 4)
    empty = only_action(post(actuator, backlog("target-q", 0, starts_at, alertname="TrackedBacklog")))
    assert (empty["outcome"], empty["arguments"]) == ("sent", {"size": 0})
    assert (empty["workers"][0]["command"], empty["workers"][0]["arguments"]) == ("pool_shrink", {"n": 2})
    assert empty["workers"][0]["note"] == "target 2 (size 0 within min_pool 2, max_pool 8); pool had 4 processes"
    settles_at(inspector, TARGET, 2)


def test_target_tracking_on_an_autoscaling_worker_sets_its_ceiling(actuator, inspector):
    action = only_action(post(actuator, backlog("auto-q", 600, new_start())))
    assert action["outcome"] == "sent"
    assert (action["workers"][0]["command"], action["workers"][0]["arguments"]) == ("autoscale", {"max": 6, "min": 2})
    assert (autoscaler(inspector, AUTOSCALING)["max"], autoscaler(inspector, AUTOSCALING)["min"]) == (6, 2)
    # Tracking only upwards: a smaller backlog leaves the ceiling; settling lowers it, never below
    # the floor the worker was started with.
    assert only_action(post(actuator, backlog("auto-q", 100, new_start())))["guards"] == ["at_target"]
    settle = only_action(post(actuator, backlog("auto-q", 600, new_start(), status="resolved")))
    assert (settle["workers"][0]["command"], settle["workers"][0]["arguments"]) == ("autoscale", {"max": 2, "min": 2})
    assert (autoscaler(inspector, AUTOSCALING)["max"], autoscaler(inspector, AUTOSCALING)["min"]) == (2, 2)


def test_a_shrink_the_busy_worker_refuses_is_recorded(actuator, inspector):
    busy(inspector, seconds=3)
    refused = only_action(post(actuator, grow("busy-q", 1, new_start(), "ShrinkPool")))
    assert (refused["outcome"], refused["workers"][0]["outcome"]) == ("failed", "error")
    assert "All processes busy" in refused["workers"][0]["detail"]
    assert pool_size(inspector, BUSY) == 2


def test_a_shrink_never_leaves_a_pool_without_processes(actuator, inspector):
    """Without min_pool a shrink still keeps one process (billiard would stop every idle one)."""
    assert pool_size(inspector, RATES) == 1
    held = only_action(post(actuator, grow("rates-q", 1, new_start(), "ShrinkPool")))
    assert (held["outcome"], held["guards"]) == ("suppressed", ["bounds"])
    assert held["reason"] == (f"bounds: pool of {RATES} has 1 processes and a pool keeps at least 1 process: "
                              "shrink by 1 clipped to 0")
    assert pool_size(inspector, RATES) == 1


def test_a_notification_that_found_no_target_keeps_no_claim(actuator):
    """No worker answered: nothing was decided, so Alertmanager's next send of it is not a duplicate."""
    body = notification(alert({"alertname": "Throttle", "hostname": "late@guards", "task": "demo.add"},
                              annotations={"rate": "1/m"}, starts_at=new_start()))
    outcomes = [only_action(post(actuator, body)) for _ in range(2)]
    assert [(a["outcome"], a["guards"]) for a in outcomes] == [("no_targets", []), ("no_targets", [])]
    assert "worker 'late@guards' did not answer inspection" in outcomes[1]["reason"]


def test_dry_run_and_pause_send_nothing_and_say_so(actuator, inspector):
    before = pool_size(inspector, GROW)
    answer = post(actuator, grow("grow-q", 0, new_start(), "Rehearse"))
    rehearsal = only_action(answer)
    assert (rehearsal["outcome"], rehearsal["reason"]) == \
        ("dry_run", "dry run (rule 'rehearse' has dry_run: true): nothing sent")
    # What would have been sent, after the bounds.
    (would,) = rehearsal["workers"]
    assert (would["outcome"], would["command"], would["arguments"]) == ("dry_run", "pool_grow", {"n": 9 - before})
    assert would["note"] == f"target 9 (size 50 within min_pool 1, max_pool 9); pool had {before} processes"
    (stored,) = decisions(actuator, notification=str(answer.json()["notification_id"]))
    assert (stored["rule"], stored["outcome"], stored["reason"]) == ("rehearse", "dry_run", rehearsal["reason"])
    assert stored["workers"] == [would]

    assert requests.post(f"{actuator.url}/pause", timeout=5).status_code == 401
    paused = requests.post(f"{actuator.url}/pause", json={"reason": "deploy in progress"}, auth=AUTH, timeout=5)
    assert paused.status_code == 200 and paused.json()["paused"] is True and paused.json()["by"] == "basic:admin"
    try:
        assert metric(actuator, "celery_actuator_paused") == 1
        assert requests.get(f"{actuator.url}/healthz", timeout=5).json()["paused"] is True
        page = requests.get(f"{actuator.url}/", auth=AUTH, timeout=5).text
        assert "PAUSED" in page and "deploy in progress" in page
        body = grow("grow-q", 1, new_start())
        answer = post(actuator, body)
        held = only_action(answer)
        assert (held["outcome"], held["guards"], held["workers"]) == ("suppressed", ["paused"], [])
        (stored,) = decisions(actuator, notification=str(answer.json()["notification_id"]))
        assert (stored["rule"], stored["outcome"], stored["guards"], stored["reason"]) == \
            ("grow", "suppressed", ["paused"], held["reason"])
        assert suppressed(actuator, "grow", "paused") == 1
        assert held["reason"].startswith("actuator paused by basic:admin at ") and "deploy in progress" in held["reason"]
        manual = requests.post(f"{actuator.url}/api/worker/pool/grow/{GROW}?n=1", auth=AUTH, timeout=5)
        assert manual.status_code == 403 and "actuator paused by basic:admin" in manual.json()["error"]
    finally:
        resumed = requests.post(f"{actuator.url}/resume", auth=AUTH, timeout=5)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    assert metric(actuator, "celery_actuator_paused") == 0
    operator = decisions(actuator, source="operator", limit="2")
    assert [(r["command"], r["outcome"], r["principal"]) for r in operator] == \
        [("resume", "resumed", "basic:admin"), ("pause", "paused", "basic:admin")]
    # Paused, the notification claimed nothing: sent again after the resume, it acts. Had the
    # rehearsal or the paused grows been sent, they would show together with this one.
    assert only_action(post(actuator, body))["outcome"] == "sent"
    grows_to(inspector, GROW, before + 1)


async def test_a_retry_after_a_503_acts(actuator_client, module_broker_url, workers, inspector):
    """The claim of a notification met by a broker outage is given back: the retry acts. The two
    in-process actuators share one guard state (and audit log): the same actuator, before and
    after its broker came back."""
    rules = RULES.replace("cooldown: 2s", "cooldown: 0s")
    down = await actuator_client(rules, "redis://127.0.0.1:1/0")
    up = await actuator_client(rules, module_broker_url)
    body = limit("Throttle", "demo.sleep", "7/m", new_start())
    assert (await down.post("/webhook", json=body, headers=AUTH_HEADERS)).status == 503
    retried = await up.post("/webhook", json=body, headers=AUTH_HEADERS)
    assert retried.status == 200
    assert (await retried.json())["alerts"][0]["actions"][0]["outcome"] == "sent"
    assert task_info(inspector, RATES, "demo.sleep") == "demo.sleep [rate_limit=7/m]"
    again = await (await up.post("/webhook", json=body, headers=AUTH_HEADERS)).json()
    assert again["alerts"][0]["actions"][0]["guards"] == ["duplicate"]


async def test_an_unreachable_guard_state_is_a_503_and_recorded(actuator_client, module_broker_url, workers):
    client = await actuator_client(RULES, module_broker_url,
                                   guards=GuardSettings(state_url="redis://127.0.0.1:1/0"))
    answer = await client.post("/webhook", json=grow("grow-q", 1, new_start()), headers=AUTH_HEADERS)
    assert answer.status == 503
    body = await answer.json()
    assert body["status"] == "state_unavailable" and "redis://127.0.0.1:1/0" in body["error"]
    recorded = await (await client.get("/actions", params={"outcome": "state_unavailable"},
                                       headers=AUTH_HEADERS)).json()
    assert [(r["rule"], r["command"]) for r in recorded["actions"]] == [("grow", "pool_grow")]
    health = await (await client.get("/healthz")).json()
    assert health["paused"] is None and health["state"].startswith("redis://127.0.0.1:1/0")


async def test_the_global_budget_caps_all_rules_and_manual_actions_together(actuator_client, module_broker_url,
                                                                             workers, inspector):
    rules = """
        limits: {max_actions_per_hour: 3}
        rules:
          - name: one
            match: {alertname: One}
            actions: [{command: rate_limit, workers: {name: "{{ labels.hostname }}"}, task: demo.retry,
                       rate_limit: "{{ annotations.rate }}"}]
          - name: two
            match: {alertname: Two}
            actions: [{command: rate_limit, workers: {name: "{{ labels.hostname }}"}, task: demo.retry,
                       rate_limit: "{{ annotations.rate }}"}]
    """
    client = await actuator_client(rules, module_broker_url)

    async def rule(name: str, rate: str) -> dict:
        answer = await client.post("/webhook", json=limit(name, "demo.retry", rate, new_start()), headers=AUTH_HEADERS)
        return (await answer.json())["alerts"][0]["actions"][0]

    async def manual(rate: str):
        return await client.post("/api/task/rate-limit/demo.retry", data={"ratelimit": rate, "workername": RATES},
                                 headers=AUTH_HEADERS)

    assert (await rule("One", "1/h"))["outcome"] == "sent"
    assert (await manual("2/h")).status == 200
    assert (await rule("Two", "3/h"))["outcome"] == "sent"
    held = await rule("One", "4/h")
    assert (held["outcome"], held["reason"]) == ("suppressed", "budget: 3 actions in the last hour (all rules and "
                                                               "manual actions); limits.max_actions_per_hour is 3")
    refused = await manual("5/h")
    assert refused.status == 403
    assert (await refused.json())["error"] == (
        "Failed to set rate limit on demo.retry: budget: 3 actions in the last hour (all rules and manual actions); "
        "limits.max_actions_per_hour is 3")
    assert task_info(inspector, RATES, "demo.retry") == "demo.retry [rate_limit=3/h]"


async def test_a_stale_remembered_size_never_shrinks_a_pool_to_nothing(actuator_client, module_broker_url, workers,
                                                                        inspector):
    """The size asked for moments ago stands in for live inspection only where that is cautious:
    remembering 8 processes of a pool that has 2 (a worker restarted, someone else shrank it),
    a shrink counts from the 2 and a target between the two waits."""
    rules = f"""
        rules:
          - name: settle
            match: {{alertname: Settle}}
            on: resolved
            actions: [{{command: pool_target, workers: {{name: "{TARGET}"}}, size: 2, min_pool: 2, max_pool: 10}}]
          - name: shrink-hard
            match: {{alertname: ShrinkHard}}
            actions: [{{command: pool_shrink, workers: {{name: "{TARGET}"}}, n: 6, min_pool: 2}}]
    """
    client = await actuator_client(rules, module_broker_url)
    assert pool_size(inspector, TARGET) == 2
    state = client.app[SERVICES].guards.state
    await state.reserve(Reservation(MANUAL_KEY, TARGET, pool=PoolExpectation(None, 8, 60)), record=True)
    settle = notification(alert({"alertname": "Settle"}, status="resolved", starts_at=new_start()))
    action = await only_action_of(client, settle)
    assert (action["outcome"], action["guards"]) == ("suppressed", ["bounds"])
    assert f"pool of {TARGET} is settling: live inspection shows 2 processes, 8 were asked for" in action["reason"]
    shrink = notification(alert({"alertname": "ShrinkHard"}, starts_at=new_start()))
    action = await only_action_of(client, shrink)
    assert action["reason"] == (f"bounds: pool of {TARGET} has 2 processes (live inspection 2, 8 asked for moments "
                                "ago) and min_pool is 2: shrink by 6 clipped to 0")
    assert pool_size(inspector, TARGET) == 2
    # The settling hold may pass: the notification kept no claim and acts when sent again.
    assert (await only_action_of(client, settle))["guards"] == ["bounds"]


async def test_a_worker_that_does_not_answer_the_command_is_recorded_as_no_reply(actuator_client, module_broker_url,
                                                                                 workers, monkeypatch):
    """The worker answers inspection, then stops (SIGSTOP) just before the command reaches it."""
    client = await actuator_client(RULES, module_broker_url, control=ControlSettings(
        broker_url=module_broker_url, reply_timeout=1, inspect_timeout=1, discovery_interval=3600))
    control, worker = client.app[SERVICES].control, workers[RATES]
    send = control.send

    async def send_to_a_stopped_worker(*args, **kwargs):
        os.kill(worker.proc.pid, signal.SIGSTOP)
        try:
            return await send(*args, **kwargs)
        finally:
            os.kill(worker.proc.pid, signal.SIGCONT)
    monkeypatch.setattr(control, "send", send_to_a_stopped_worker)
    answer = await client.post("/webhook", json=limit("Throttle", "demo.add", "4/m", new_start()), headers=AUTH_HEADERS)
    action = (await answer.json())["alerts"][0]["actions"][0]
    assert answer.status == 200 and action["outcome"] == "failed"
    assert action["workers"] == [{"worker": RATES, "outcome": "no_reply",
                                  "detail": "no reply within the reply timeout"}]
    scrape = Metrics(await (await client.get("/metrics")).text())
    assert scrape.value("celery_actuator_worker_replies_total", command="rate_limit", outcome="no_reply") == 1
    assert scrape.value("celery_actuator_actions_total", rule="throttle", command="rate_limit", outcome="failed") == 1
    stored = await (await client.get("/actions", params={"worker": RATES}, headers=AUTH_HEADERS)).json()
    assert [(r["rule"], r["outcome"], r["workers"]) for r in stored["actions"]] == \
        [("throttle", "failed", action["workers"])]
    # The same through the Flower API: a worker that answered inspection but not the command is a
    # 502 (a retry may reach it), not a 403 (the worker said no).
    manual = await client.post("/api/task/rate-limit/demo.add", data={"ratelimit": "5/m", "workername": RATES},
                               headers=AUTH_HEADERS)
    assert manual.status == 502
    body = await manual.json()
    assert body["error"].startswith("Failed to set rate limit on demo.add: ")
    assert (body["outcome"], body["workers"]) == ("failed", action["workers"])
    stored = await (await client.get("/actions", params={"source": "api"}, headers=AUTH_HEADERS)).json()
    assert [(r["command"], r["outcome"], r["workers"]) for r in stored["actions"]] == \
        [("rate_limit", "failed", action["workers"])]


async def test_a_retry_resumes_at_the_action_the_outage_stopped(actuator_client, module_broker_url, workers,
                                                                inspector, monkeypatch):
    """A rule with two actions: the first is sent (the busy worker refuses the shrink), then the
    guard state stops answering (SIGSTOP of its redis-server). Forgetting the refused shrink's
    pool size fails after the send: still recorded as what happened. The second action meets the
    outage: 503. Alertmanager's retry sends the second action, and not the first again."""
    state_server = RedisServer()
    state_server.start()
    try:
        rules = f"""
            rules:
              - name: two-steps
                match: {{alertname: TwoSteps}}
                actions:
                  - {{command: pool_shrink, workers: {{name: "{BUSY}"}}, n: 1}}
                  - {{command: rate_limit, workers: {{name: "{RATES}"}}, task: demo.sleep, rate_limit: 11/m}}
        """
        client = await actuator_client(rules, module_broker_url,
                                       guards=GuardSettings(state_url=state_server.url(), pool_settle_time=60))
        control = client.app[SERVICES].control
        send = control.send

        async def send_then_lose_the_state(*args, **kwargs):
            try:
                return await send(*args, **kwargs)
            finally:
                os.kill(state_server.proc.pid, signal.SIGSTOP)
        monkeypatch.setattr(control, "send", send_then_lose_the_state)
        busy(inspector, seconds=8)
        body = notification(alert({"alertname": "TwoSteps"}, starts_at=new_start()))
        try:
            answer = await client.post("/webhook", json=body, headers=AUTH_HEADERS)
            first, second = (await answer.json())["alerts"][0]["actions"]
            assert answer.status == 503
            assert (first["outcome"], first["workers"][0]["outcome"]) == ("failed", "error")
            assert (second["command"], second["outcome"]) == ("rate_limit", "state_unavailable")
        finally:
            os.kill(state_server.proc.pid, signal.SIGCONT)
        monkeypatch.setattr(control, "send", send)
        retried = await client.post("/webhook", json=body, headers=AUTH_HEADERS)
        first, second = (await retried.json())["alerts"][0]["actions"]
        assert retried.status == 200
        assert (first["guards"], second["outcome"]) == (["duplicate"], "sent")
        assert task_info(inspector, RATES, "demo.sleep") == "demo.sleep [rate_limit=11/m]"
        assert pool_size(inspector, BUSY) == 2
    finally:
        state_server.close()


def test_a_restarted_actuator_keeps_cooldowns_idempotency_and_the_audit_log(workers, start_actuator, inspector):
    actuator = start_actuator(RULES.replace("cooldown: 2s", "cooldown: 1h"))
    first = limit("Throttle", "tasks.sleep", "5/m", new_start())
    assert only_action(post(actuator, first))["outcome"] == "sent"
    before = decisions(actuator, limit="1000")
    actuator.stop()
    actuator.start()
    assert only_action(post(actuator, first))["guards"] == ["duplicate"]
    later = only_action(post(actuator, limit("Throttle", "tasks.sleep", "6/m", new_start())))
    assert later["guards"] == ["cooldown"]
    assert task_info(inspector, RATES, "tasks.sleep") == "tasks.sleep [rate_limit=5/m]"
    after = decisions(actuator, limit="1000")
    assert after[2:] == before and [r["guards"] for r in after[:2]] == [["cooldown"], ["duplicate"]]


def test_replicas_sharing_a_state_url_act_once(workers, start_actuator, inspector, redis_server):
    state = ("--state-url", redis_server.fresh_url(), "--state-key-prefix", "guards-test:")
    replicas = [start_actuator(RULES, *state), start_actuator(RULES, *state)]
    before = pool_size(inspector, GROW)

    def at_once(*bodies: dict) -> list[dict]:
        """Each body to its replica, at the same time; their only actions."""
        async def send_all() -> list[dict]:
            async with aiohttp.ClientSession(headers=AUTH_HEADERS) as session:
                async def send(replica, body) -> dict:
                    async with session.post(f"{replica.url}/webhook", json=body) as answer:
                        assert answer.status == 200
                        return (await answer.json())["alerts"][0]["actions"][0]
                return await asyncio.gather(*(send(replica, body) for replica, body in zip(replicas, bodies)))
        return asyncio.run(send_all())

    body = grow("grow-q", 1, new_start())
    actions = at_once(body, body)
    assert sorted(a["outcome"] for a in actions) == ["sent", "suppressed"]
    assert [a["guards"] for a in actions if a["outcome"] == "suppressed"] == [["duplicate"]]
    grows_to(inspector, GROW, before + 1)
    # Two occurrences of a rule with a cooldown, one per replica, at the same time: one acts.
    actions = at_once(limit("Throttle", "demo.fail", "8/m", new_start()),
                      limit("Throttle", "demo.fail", "9/m", new_start()))
    assert sorted(a["outcome"] for a in actions) == ["sent", "suppressed"]
    assert [a["guards"] for a in actions if a["outcome"] == "suppressed"] == [["cooldown"]]
    sent, = [a for a in actions if a["outcome"] == "sent"]
    assert task_info(inspector, RATES, "demo.fail") == f"demo.fail [rate_limit={sent['arguments']['rate_limit']}]"
    # The pause switch is shared too: paused through one replica, the other holds its actions.
    assert requests.post(f"{replicas[0].url}/pause", auth=AUTH, timeout=5).status_code == 200
    try:
        assert metric(replicas[1], "celery_actuator_paused") == 1
        held = only_action(post(replicas[1], grow("grow-q", 1, new_start())))
        assert held["guards"] == ["paused"]
    finally:
        assert requests.post(f"{replicas[1].url}/resume", auth=AUTH, timeout=5).status_code == 200
    assert metric(replicas[0], "celery_actuator_paused") == 0
