"""Alertmanager webhooks against ``autopilot-actuator serve`` (a real subprocess, real HTTP), a real
Redis broker and real prefork and solo workers: every assertion is on what the workers report."""
from __future__ import annotations

import textwrap
import uuid

import pytest
import requests

from tests.actuator.conftest import AUTH, AUTH_HEADERS, decisions, post
from tests.actuator.payloads import alert, backlog, notification
from tests.support.inspection import consumed_queues, pool_concurrency, pool_pids, pool_size, task_info
from tests.support.polling import wait_for

PREFORK = "w1@webhook"
SOLO = "solo@webhook"
THREADS = "threads@webhook"

RULES = """
    rules:
      - name: grow-on-backlog
        match: {alertname: CeleryQueueBacklog}
        actions:
          - command: pool_grow
            workers: {consuming: "{{ labels.queue_name }}"}
            n: "{{ [ (value / 100) | round(0, 'ceil') | int, 4 ] | min }}"
      - name: consume-orphaned-queue
        match: {alertname: CeleryQueueWithoutConsumers}
        on: firing
        actions:
          - command: add_consumer
            workers: {name: "{{ labels.worker }}"}
            queue: "{{ labels.queue_name }}"
      - name: release-orphaned-queue
        match: {alertname: CeleryQueueWithoutConsumers}
        on: resolved
        actions:
          - command: cancel_consumer
            workers: {name: "{{ labels.worker }}"}
            queue: "{{ labels.queue_name }}"
      - name: throttle-failing-task
        match: {alertname: CeleryTaskFailing}
        actions:
          - command: rate_limit
            workers: all
            task: "{{ labels.name }}"
            rate_limit: "{{ annotations.rate }}"
          - command: time_limit
            workers: {name: "{{ labels.hostname }}"}
            task: "{{ labels.name }}"
            soft: "{{ value }}"
            hard: "{{ value * 2 }}"
      - name: restart-leaky-pools
        match: {alertname: CeleryWorkerMemoryHigh}
        actions:
          - command: pool_restart
            workers: all
      - name: stop-runaway-worker
        match: {alertname: CeleryWorkerRunaway}
        actions:
          - command: shutdown
            workers: {name: "{{ labels.hostname }}"}
      - name: revoke-stuck-task
        match: {alertname: CeleryTaskStuck}
        actions:
          - command: revoke
            workers: {name: "{{ labels.hostname }}"}
            task_id: "{{ labels.task_id }}"
"""


@pytest.fixture(scope="module")
def cluster(start_workers, start_actuator):
    start_workers({"name": PREFORK, "queues": ["celery"], "concurrency": 2, "env": {"DEMO_POOL_RESTARTS": "1"}},
                  {"name": SOLO, "queues": ["solo"], "pool": "solo"},
                  {"name": THREADS, "queues": ["threads"], "pool": "threads"})
    return start_actuator(RULES)


def test_backlog_alert_grows_the_pool_by_the_rendered_n(cluster, inspector):
    before = pool_size(inspector, PREFORK)
    answer = post(cluster, backlog("celery", 250))
    assert answer.status_code == 200, answer.text
    action = answer.json()["alerts"][0]["actions"][0]
    assert (action["rule"], action["command"], action["arguments"], action["outcome"]) == \
        ("grow-on-backlog", "pool_grow", {"n": 3}, "sent")
    assert action["workers"] == [{"worker": PREFORK, "outcome": "ok", "detail": "pool will grow"}]
    wait_for(lambda: pool_size(inspector, PREFORK) == before + 3, timeout=20,
             what=f"{PREFORK} pool to grow from {before} to {before + 3}")
    recorded = decisions(cluster, notification=answer.json()["notification_id"])
    assert [(r["command"], r["outcome"], r["principal"]) for r in recorded] == \
        [("pool_grow", "sent", "basic:admin")]
    assert recorded[0]["workers"][0]["detail"] == "pool will grow"


@pytest.mark.parametrize(("worker", "pool"), [(SOLO, "solo"), (THREADS, "threads")])
def test_a_pool_that_cannot_grow_is_refused_with_a_reason(cluster, inspector, worker, pool):
    before = pool_concurrency(inspector, worker)
    answer = post(cluster, backlog(pool, 300))
    action = answer.json()["alerts"][0]["actions"][0]
    assert answer.status_code == 200 and action["outcome"] == "refused"
    assert action["workers"] == [{"worker": worker, "outcome": "refused",
                                  "detail": f"the {pool} pool cannot grow or shrink"}]
    assert pool_concurrency(inspector, worker) == before


def test_add_consumer_then_cancel_it_when_resolved(cluster, inspector):
    labels = {"alertname": "CeleryQueueWithoutConsumers", "queue_name": "orphans", "worker": PREFORK}
    answer = post(cluster, notification(alert(labels)))
    assert answer.json()["alerts"][0]["actions"][0]["outcome"] == "sent", answer.text
    wait_for(lambda: "orphans" in consumed_queues(inspector, PREFORK), what="worker to consume 'orphans'")
    answer = post(cluster, notification(alert(labels, status="resolved")))
    action = answer.json()["alerts"][0]["actions"][0]
    assert (action["rule"], action["outcome"]) == ("release-orphaned-queue", "sent"), answer.text
    wait_for(lambda: "orphans" not in consumed_queues(inspector, PREFORK), what="worker to drop 'orphans'")


def test_label_values_with_template_syntax_are_used_literally(cluster, inspector):
    labels = {"alertname": "CeleryQueueWithoutConsumers", "queue_name": "{{7*7}}", "worker": PREFORK}
    answer = post(cluster, notification(alert(labels)))
    assert answer.json()["alerts"][0]["actions"][0]["arguments"]["queue"] == "{{7*7}}"
    queues = wait_for(lambda: "{{7*7}}" in (q := consumed_queues(inspector, PREFORK)) and q,
                      what="worker to consume the queue named '{{7*7}}'")
    assert "49" not in queues


def test_rate_and_time_limits_reach_the_worker(cluster, inspector):
    labels = {"alertname": "CeleryTaskFailing", "name": "demo.sleep", "hostname": PREFORK}
    answer = post(cluster, notification(alert(labels, annotations={"rate": "200/m", "value": "30"})))
    actions = answer.json()["alerts"][0]["actions"]
    assert [(a["command"], a["outcome"]) for a in actions] == [("rate_limit", "sent"), ("time_limit", "sent")]
    # rate_limit went to every worker; the solo worker applies it too.
    assert {w["worker"] for w in actions[0]["workers"]} == {PREFORK, SOLO, THREADS}
    assert task_info(inspector, PREFORK, "demo.sleep") == \
        "demo.sleep [rate_limit=200/m time_limit=60.0 soft_time_limit=30.0]"
    assert task_info(inspector, SOLO, "demo.sleep") == "demo.sleep [rate_limit=200/m]"


def test_pool_restart_only_where_the_worker_enables_it(cluster, inspector):
    before = pool_pids(inspector, PREFORK)
    answer = post(cluster, notification(alert({"alertname": "CeleryWorkerMemoryHigh"})))
    action = answer.json()["alerts"][0]["actions"][0]
    assert action["outcome"] == "partial"
    off = "worker_pool_restarts is off in the worker's configuration"
    assert action["workers"] == [
        {"worker": SOLO, "outcome": "refused", "detail": off},
        {"worker": THREADS, "outcome": "refused", "detail": off},
        {"worker": PREFORK, "outcome": "ok", "detail": "reload started"},
    ]
    # Billiard replaces the process that sees the restart flag first (on an idle pool, not all
    # of them): the proof that the restart ran is a pool process that was not there before.
    wait_for(lambda: (pids := pool_pids(inspector, PREFORK)) - before and len(pids) == len(before),
             timeout=20, what=f"{PREFORK} to replace a pool process")


def test_shutdown_without_allow_is_refused_and_recorded(cluster, inspector):
    answer = post(cluster, notification(alert({"alertname": "CeleryWorkerRunaway", "hostname": PREFORK})))
    action = answer.json()["alerts"][0]["actions"][0]
    assert answer.status_code == 200
    assert (action["command"], action["outcome"]) == ("shutdown", "refused")
    assert "allow" in action["reason"] and action["workers"] == []
    recorded = decisions(cluster, command="shutdown")[0]
    assert (recorded["outcome"], recorded["alert"]["labels"]["hostname"]) == ("refused", PREFORK)
    assert inspector.control.ping(destination=[PREFORK], timeout=2) == [{PREFORK: {"ok": "pong"}}]


async def test_revoke_is_sent_only_where_the_rule_file_allows_it(cluster, actuator_client, module_broker_url,
                                                               inspector):
    """The same rule refused (and recorded) without ``allow: [revoke]``, then sent with it: the
    worker lists the task id among its revoked ones only after the allowed send."""
    task_id = str(uuid.uuid4())
    body = notification(alert({"alertname": "CeleryTaskStuck", "hostname": PREFORK, "task_id": task_id}))

    def revoked() -> list[str]:
        return inspector.control.inspect(destination=[PREFORK], timeout=2, limit=1).revoked()[PREFORK]

    refused = post(cluster, body).json()["alerts"][0]["actions"][0]
    assert (refused["command"], refused["outcome"], refused["workers"]) == ("revoke", "refused", [])
    assert "allow" in refused["reason"]
    (recorded,) = decisions(cluster, command="revoke")
    assert (recorded["rule"], recorded["outcome"], recorded["arguments"]["task_id"], recorded["reason"]) == \
        ("revoke-stuck-task", "refused", task_id, refused["reason"])
    assert task_id not in revoked()

    allowed = await actuator_client("allow: [revoke]\n" + textwrap.dedent(RULES), module_broker_url)
    answer = await (await allowed.post("/webhook", json=body, headers=AUTH_HEADERS)).json()
    sent = answer["alerts"][0]["actions"][0]
    assert (sent["outcome"], [(w["worker"], w["outcome"]) for w in sent["workers"]]) == ("sent", [(PREFORK, "ok")])
    # The worker replied after adding the id to its revoked set: no need to wait for it.
    assert task_id in revoked()
    records = await (await allowed.get("/actions", params={"command": "revoke"}, headers=AUTH_HEADERS)).json()
    assert [(r["outcome"], r["arguments"]["task_id"]) for r in records["actions"]] == [("sent", task_id)]


def test_no_rule_matched_is_200_and_recorded(cluster):
    answer = post(cluster, notification(alert({"alertname": "SomethingElse"})))
    assert answer.status_code == 200
    assert answer.json()["message"] == "no rule matched" and answer.json()["alerts"][0]["matched_rules"] == []
    assert decisions(cluster, notification=answer.json()["notification_id"])[0]["outcome"] == "no_match"


def test_an_action_that_fails_to_render_is_recorded_as_invalid(cluster):
    answer = post(cluster, notification(alert({"alertname": "CeleryQueueBacklog", "queue_name": "celery"})))
    action = answer.json()["alerts"][0]["actions"][0]
    assert answer.status_code == 200 and action["outcome"] == "invalid"
    assert action["reason"].startswith("n: UndefinedError: 'value' is undefined")


def test_without_valid_credentials_nothing_reaches_the_worker(cluster, inspector):
    before = pool_size(inspector, PREFORK)
    recorded = len(decisions(cluster, limit="1000"))
    for auth in (None, ("admin", "wrong"), ("nobody", "secret")):
        answer = post(cluster, backlog("celery", 400), auth=auth)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="celery-autopilot"'
    assert requests.get(f"{cluster.url}/actions", timeout=5).status_code == 401
    assert len(decisions(cluster, limit="1000")) == recorded
    # Then one authorised grow by 1 (a new occurrence of the alert: the first test's notification
    # was handled already). Prefork starts every pending process at once, so once this one shows,
    # any grow that slipped through earlier (4 per request) would show as well.
    fresh = backlog("celery", 100, starts_at="2026-11-26T11:00:00Z")
    assert post(cluster, fresh).json()["alerts"][0]["actions"][0]["outcome"] == "sent"
    after = wait_for(lambda: (size := pool_size(inspector, PREFORK)) > before and size,
                     what="the authorised grow to show")
    assert after == before + 1
