"""The guards end to end: ``autopilot-actuator serve`` subprocesses (real HTTP), a real Redis broker
and real prefork workers. Every claim is proved by what the workers report (pool sizes, task rate
limits) and by what the audit log recorded.

Prefork starts every pending process at once, so "the pool grew by exactly n" is proved by
waiting until it grew and then finding it grew by n: an extra grow sent earlier would show at the
same moment.
"""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import requests

from actuator.settings import GuardSettings
from tests.actuator.conftest import AUTH, AUTH_HEADERS, decisions, post
from tests.actuator.payloads import alert, new_start, notification
from tests.support.inspection import autoscaler, pool_size, task_info
from tests.support.polling import wait_for

GROW = "grow@guards"
BOUNDS = "bounds@guards"
TARGET = "target@guards"
AUTOSCALING = "auto@guards"
RATES = "rates@guards"

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
      - name: track-backlog
        match: {alertname: CeleryQueueBacklog}
        on: [firing, resolved]
        actions:
          - command: pool_target
            workers: {consuming: "{{ labels.queue_name }}"}
            size: "{{ (value / 100) | round(0, 'ceil') | int }}"
            min_pool: 2
            max_pool: 8
      - name: throttle
        match: {alertname: Throttle}
        cooldown: 2s
        actions:
          - {command: rate_limit, workers: {name: "{{ labels.hostname }}"}, task: "{{ labels.task }}",
             rate_limit: "{{ annotations.rate }}"}
      - name: budgeted
        match: {alertname: Budgeted}
        max_actions_per_hour: 2
        actions:
          - {command: rate_limit, workers: {name: "{{ labels.hostname }}"}, task: "{{ labels.task }}",
             rate_limit: "{{ annotations.rate }}"}
"""


@pytest.fixture(scope="module")
def workers(start_workers):
    return start_workers({"name": GROW, "queues": ["grow-q"]},
                         {"name": BOUNDS, "queues": ["bounds-q"]},
                         {"name": TARGET, "queues": ["target-q"]},
                         {"name": AUTOSCALING, "queues": ["auto-q"], "extra_args": ["--autoscale=4,2"]},
                         {"name": RATES, "queues": ["rates-q"], "concurrency": 1})


@pytest.fixture(scope="module")
def actuator(workers, start_actuator):
    return start_actuator(RULES)


def grow(queue: str, n: int, starts_at: str, alertname: str = "GrowPool") -> dict:
    return notification(alert({"alertname": alertname, "queue_name": queue}, annotations={"n": str(n)},
                              starts_at=starts_at))


def limit(alertname: str, task: str, rate: str, starts_at: str) -> dict:
    return notification(alert({"alertname": alertname, "hostname": RATES, "task": task},
                              annotations={"rate": rate}, starts_at=starts_at))


def backlog(queue: str, length: int, starts_at: str, status: str = "firing") -> dict:
    return notification(alert({"alertname": "CeleryQueueBacklog", "queue_name": queue},
                              annotations={"value": str(length)}, starts_at=starts_at, status=status))


def only_action(answer: requests.Response) -> dict:
    assert answer.status_code == 200, answer.text
    (alert_report,) = answer.json()["alerts"]
    (action,) = alert_report["actions"]
    return action


def grows_to(inspector, worker: str, size: int) -> None:
    """Wait until the pool grew to at least ``size``, then it must be exactly ``size``."""
    seen = wait_for(lambda: (now := pool_size(inspector, worker)) >= size and now, timeout=20,
                    what=f"{worker} to reach {size} processes")
    assert seen == size, f"{worker} has {seen} processes; expected exactly {size}"


def settles_at(inspector, worker: str, size: int) -> None:
    wait_for(lambda: pool_size(inspector, worker) == size, timeout=20, what=f"{worker} to settle at {size}")


def metric(actuator, line_start: str) -> float:
    text = requests.get(f"{actuator.url}/metrics", timeout=5).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)]
    assert values, f"no metric line starts with {line_start}"
    return values[0]


def test_a_thousand_identical_notifications_act_once(actuator, inspector):
    before = pool_size(inspector, GROW)
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
    assert metric(actuator, 'celery_actuator_suppressions_total{reason="duplicate",rule="grow"}') == 999
    print(f"1000 concurrent identical notifications answered in {elapsed:.2f}s")


def test_cooldown_suppresses_a_new_occurrence_then_expires(actuator, inspector):
    assert only_action(post(actuator, limit("Throttle", "demo.add", "1/m", new_start())))["outcome"] == "sent"
    second = only_action(post(actuator, limit("Throttle", "demo.add", "2/m", new_start())))
    assert (second["outcome"], second["guards"]) == ("suppressed", ["cooldown"])
    assert second["workers"][0]["guard"] == "cooldown" and "cooldown 2s" in second["reason"]
    assert task_info(inspector, RATES, "demo.add") == "demo.add [rate_limit=1/m]"
    # Each attempt is a new occurrence; the ones still inside the cooldown are recorded as such.
    wait_for(lambda: only_action(post(actuator, limit("Throttle", "demo.add", "3/m", new_start())))["outcome"]
             == "sent", timeout=10, interval=0.2, what="the 2 s cooldown to expire")
    assert task_info(inspector, RATES, "demo.add") == "demo.add [rate_limit=3/m]"


def test_the_action_past_the_rules_budget_is_suppressed(actuator, inspector):
    outcomes = [only_action(post(actuator, limit("Budgeted", "demo.mul", f"{i}/m", new_start())))
                for i in (1, 2, 3)]
    assert [a["outcome"] for a in outcomes] == ["sent", "sent", "suppressed"]
    assert outcomes[2]["guards"] == ["budget"]
    assert outcomes[2]["reason"] == ("budget: rule 'budgeted' took 2 actions in the last hour; "
                                     "its max_actions_per_hour is 2")
    assert task_info(inspector, RATES, "demo.mul") == "demo.mul [rate_limit=2/m]"


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
    # Had the shrink at min been sent, the pool would have 1 process and this would leave 2.
    assert only_action(post(actuator, grow("bounds-q", 1, new_start(), "BoundedGrow")))["outcome"] == "sent"
    grows_to(inspector, BOUNDS, 3)


def test_target_tracking_sets_the_pool_from_the_queue_length(actuator, inspector):
    assert pool_size(inspector, TARGET) == 2
    starts_at = new_start()
    up = only_action(post(actuator, backlog("target-q", 1000, starts_at)))
    assert (up["command"], up["arguments"], up["outcome"]) == ("pool_target", {"size": 10}, "sent")
    assert (up["workers"][0]["command"], up["workers"][0]["arguments"]) == ("pool_grow", {"n": 6})
    assert up["workers"][0]["note"] == ("target 8 (size 10 within min_pool 2, max_pool 8); "
                                        "pool had 2 processes")
    grows_to(inspector, TARGET, 8)
    steady = only_action(post(actuator, backlog("target-q", 1200, new_start())))
    assert (steady["outcome"], steady["guards"]) == ("suppressed", ["at_target"])
    # Resolved: the same alert, under the same guards (its own idempotency key).
    down = only_action(post(actuator, backlog("target-q", 0, starts_at, status="resolved")))
    assert (down["workers"][0]["command"], down["workers"][0]["arguments"]) == ("pool_shrink", {"n": 6})
    settles_at(inspector, TARGET, 2)
    again = only_action(post(actuator, backlog("target-q", 0, starts_at, status="resolved")))
    assert (again["outcome"], again["guards"]) == ("suppressed", ["duplicate"])


def test_target_tracking_on_an_autoscaling_worker_sets_its_ceiling(actuator, inspector):
    action = only_action(post(actuator, backlog("auto-q", 600, new_start())))
    assert action["outcome"] == "sent"
    assert (action["workers"][0]["command"], action["workers"][0]["arguments"]) == ("autoscale", {"max": 6, "min": 2})
    assert (autoscaler(inspector, AUTOSCALING)["max"], autoscaler(inspector, AUTOSCALING)["min"]) == (6, 2)


def test_a_shrink_the_busy_worker_refuses_is_recorded(actuator, inspector):
    inspector.send_task("demo.sleep", args=[3], queue="rates-q")
    wait_for(lambda: inspector.control.inspect(destination=[RATES], timeout=1, limit=1).active().get(RATES),
             timeout=10, what=f"{RATES} to run demo.sleep")
    refused = only_action(post(actuator, grow("rates-q", 1, new_start(), "ShrinkPool")))
    assert (refused["outcome"], refused["workers"][0]["outcome"]) == ("failed", "error")
    assert "All processes busy" in refused["workers"][0]["detail"]
    assert pool_size(inspector, RATES) == 1


def test_dry_run_and_pause_send_nothing_and_say_so(actuator, inspector):
    before = pool_size(inspector, GROW)
    rehearsal = only_action(post(actuator, grow("grow-q", 0, new_start(), "Rehearse")))
    assert (rehearsal["outcome"], rehearsal["reason"]) == \
        ("dry_run", "dry run (rule 'rehearse' has dry_run: true): nothing sent")
    # What would have been sent, after the bounds.
    (would,) = rehearsal["workers"]
    assert (would["outcome"], would["command"], would["arguments"]) == ("dry_run", "pool_grow", {"n": 9 - before})
    assert would["note"] == f"target 9 (size 50 within min_pool 1, max_pool 9); pool had {before} processes"

    assert requests.post(f"{actuator.url}/pause", timeout=5).status_code == 401
    paused = requests.post(f"{actuator.url}/pause", json={"reason": "deploy in progress"}, auth=AUTH, timeout=5)
    assert paused.status_code == 200 and paused.json()["paused"] is True and paused.json()["by"] == "basic:admin"
    try:
        assert metric(actuator, "celery_actuator_paused") == 1
        assert requests.get(f"{actuator.url}/healthz", timeout=5).json()["paused"] is True
        page = requests.get(f"{actuator.url}/", auth=AUTH, timeout=5).text
        assert "PAUSED" in page and "deploy in progress" in page
        body = grow("grow-q", 1, new_start())
        held = only_action(post(actuator, body))
        assert (held["outcome"], held["guards"], held["workers"]) == ("suppressed", ["paused"], [])
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


async def test_the_global_budget_caps_all_rules_together(actuator_client, module_broker_url, workers, inspector):
    rules = """
        limits: {max_actions_per_hour: 2}
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
    outcomes = []
    for name, rate in (("One", "1/h"), ("Two", "2/h"), ("One", "3/h")):
        answer = await client.post("/webhook", json=limit(name, "demo.retry", rate, new_start()), headers=AUTH_HEADERS)
        outcomes.append((await answer.json())["alerts"][0]["actions"][0])
    assert [a["outcome"] for a in outcomes] == ["sent", "sent", "suppressed"]
    assert outcomes[2]["reason"] == "budget: all rules took 2 actions in the last hour; limits.max_actions_per_hour is 2"
    assert task_info(inspector, RATES, "demo.retry") == "demo.retry [rate_limit=2/h]"


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
    body = grow("grow-q", 1, new_start())

    async def both() -> list[dict]:
        async with aiohttp.ClientSession(headers=AUTH_HEADERS) as session:
            async def send(replica) -> dict:
                async with session.post(f"{replica.url}/webhook", json=body) as answer:
                    assert answer.status == 200
                    return (await answer.json())["alerts"][0]["actions"][0]
            return await asyncio.gather(*(send(replica) for replica in replicas))

    actions = asyncio.run(both())
    assert sorted(a["outcome"] for a in actions) == ["sent", "suppressed"]
    assert [a["guards"] for a in actions if a["outcome"] == "suppressed"] == [["duplicate"]]
    grows_to(inspector, GROW, before + 1)
    # The pause switch is shared too: paused through one replica, the other holds its actions.
    assert requests.post(f"{replicas[0].url}/pause", auth=AUTH, timeout=5).status_code == 200
    try:
        assert metric(replicas[1], "celery_actuator_paused") == 1
        held = only_action(post(replicas[1], grow("grow-q", 1, new_start())))
        assert held["guards"] == ["paused"]
    finally:
        assert requests.post(f"{replicas[1].url}/resume", auth=AUTH, timeout=5).status_code == 200
    assert metric(replicas[0], "celery_actuator_paused") == 0
