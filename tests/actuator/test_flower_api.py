"""The Flower control API: the article's curl commands, run with curl as printed (only the host
changed), against ``autopilot-actuator serve`` and real workers named as in the article."""
from __future__ import annotations

import json
import shlex
import subprocess

import pytest
import requests
from celery import Celery

from tests.actuator.conftest import AUTH, AUTH_HEADERS
from tests.support.inspection import autoscaler, consumed_queues, pool_size, task_info
from tests.support.polling import wait_for

WORKER1, WORKER2, WORKER3, BUSY = "celery@worker1", "celery@worker2", "celery@worker3", "busy@flower"

# Verbatim from the article (../shared/seeds), except the autoscale one: it targets celery@worker2
# there too, but a worker cannot both grow on demand and autoscale, so it goes to celery@worker3.
GROW = 'curl -X POST http://localhost:5555/api/worker/pool/grow/celery@worker2?n=3 -u admin:secret'
SHRINK = 'curl -X POST http://localhost:5555/api/worker/pool/shrink/celery@worker2?n=1 -u admin:secret'
AUTOSCALE = ('curl -X POST "http://localhost:5555/api/worker/pool/autoscale/celery@worker3?min=3&max=10" '
             '-u admin:secret')
TIMEOUT = ('curl -X POST "http://localhost:5555/api/task/timeout/tasks.sleep" -u admin:secret '
           '-d "soft=30&hard=100&workername=celery@worker1"')
RATE_LIMIT = ('curl -X POST "http://localhost:5555/api/task/rate-limit/tasks.sleep" -u admin:secret '
              '-d "ratelimit=200/m&workername=celery@worker1"')
ADD_CONSUMER = ('curl -X POST "http://localhost:5555/api/worker/queue/add-consumer/celery@worker2?queue=sample-queue" '
                '-u admin:secret')
CANCEL_CONSUMER = ('curl -X POST "http://localhost:5555/api/worker/queue/cancel-consumer/celery@worker2?'
                   'queue=sample-queue" -u admin:secret')


@pytest.fixture(scope="module")
def actuator(start_workers, start_actuator):
    start_workers({"name": WORKER1}, {"name": WORKER2},
                  {"name": WORKER3, "extra_args": ["--autoscale=4,1"]},
                  {"name": BUSY, "queues": ["busy"], "concurrency": 1, "extra_args": ["--disable-prefetch"]})
    return start_actuator("rules: []\n")


def curl(actuator, command: str) -> tuple[int, dict]:
    """Run a curl command as printed, pointed at the actuator; (HTTP status, JSON body)."""
    args = [arg.replace("http://localhost:5555", actuator.url) for arg in shlex.split(command)]
    done = subprocess.run([*args, "-s", "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_grow_then_shrink(actuator, inspector):
    before = pool_size(inspector, WORKER2)
    assert curl(actuator, GROW) == (200, {"message": "Growing 'celery@worker2' worker's pool by 3",
                                          "outcome": "sent", "workers": [
                                              {"worker": WORKER2, "outcome": "ok", "detail": "pool will grow"}]})
    wait_for(lambda: pool_size(inspector, WORKER2) == before + 3, timeout=20, what="worker2 to grow by 3")
    status, body = curl(actuator, SHRINK)
    assert (status, body["message"]) == (200, "Shrinking 'celery@worker2' worker's pool by 1")
    wait_for(lambda: pool_size(inspector, WORKER2) == before + 2, timeout=20, what="worker2 to shrink by 1")


def test_autoscale_an_autoscaling_worker(actuator, inspector):
    status, body = curl(actuator, AUTOSCALE)
    assert (status, body["message"]) == (200, "Autoscaling 'celery@worker3' worker (min=3, max=10)")
    assert body["workers"][0]["detail"] == "autoscale now max=10 min=3"
    scaler = autoscaler(inspector, WORKER3)
    assert (scaler["max"], scaler["min"]) == (10, 3)
    wait_for(lambda: pool_size(inspector, WORKER3) >= 3, timeout=20, what="worker3 to scale up to min=3")


def test_task_time_and_rate_limits(actuator, inspector):
    assert curl(actuator, TIMEOUT)[1]["message"] == "time limits set successfully"
    assert curl(actuator, RATE_LIMIT)[1]["message"] == "new rate limit set successfully"
    assert task_info(inspector, WORKER1, "tasks.sleep") == \
        "tasks.sleep [rate_limit=200/m time_limit=100.0 soft_time_limit=30.0]"
    assert task_info(inspector, WORKER2, "tasks.sleep") == "tasks.sleep"


def test_add_and_cancel_consumer(actuator, inspector):
    assert curl(actuator, ADD_CONSUMER) == (200, {"message": "add consumer sample-queue", "outcome": "sent",
                                                  "workers": [{"worker": WORKER2, "outcome": "ok",
                                                               "detail": "add consumer sample-queue"}]})
    wait_for(lambda: "sample-queue" in consumed_queues(inspector, WORKER2), what="worker2 to consume sample-queue")
    assert curl(actuator, CANCEL_CONSUMER)[1]["message"] == "no longer consuming from sample-queue"
    wait_for(lambda: "sample-queue" not in consumed_queues(inspector, WORKER2), what="worker2 to drop sample-queue")


def api(actuator, path: str, auth=AUTH, **kwargs) -> requests.Response:
    return requests.post(f"{actuator.url}{path}", auth=auth, timeout=30, **kwargs)


@pytest.mark.parametrize(("path", "params", "data", "field", "fragment"), [
    ("/api/worker/pool/grow/celery@worker1", {"n": "abc"}, None, "n", "integer from 1 to 1000"),
    ("/api/worker/pool/grow/celery@worker1", {"n": "0"}, None, "n", "integer from 1 to 1000"),
    ("/api/worker/pool/autoscale/celery@worker3", {"min": "5", "max": "2"}, None, "min", "at most max (2)"),
    ("/api/worker/pool/autoscale/celery@worker3", {"max": "2"}, None, "min", "autoscale requires min"),
    ("/api/worker/queue/add-consumer/celery@worker1", {"queue": "two words"}, None, "queue", "whitespace"),
    ("/api/worker/queue/add-consumer/celery@worker1", {"queue": "celery@worker2.celery.pidbox"}, None, "queue",
     "not one of Celery's own (*.pidbox"),
    ("/api/worker/queue/cancel-consumer/celery@worker1", {"queue": "celeryev.123"}, None, "queue", "celeryev.*"),
    ("/api/task/rate-limit/tasks.sleep", None, {"ratelimit": "lots"}, "rate_limit", '"200/m"'),
    ("/api/task/timeout/tasks.sleep", None, {"soft": "100", "hard": "30"}, "soft", "at most hard"),
])
def test_bad_arguments_are_400_and_nothing_is_sent(actuator, path, params, data, field, fragment):
    answer = api(actuator, path, params=params, data=data)
    assert answer.status_code == 400 and answer.json()["field"] == field
    assert fragment in answer.json()["error"]


def test_a_shrink_never_leaves_a_pool_without_processes(actuator, inspector):
    """Flower would stop every idle process (billiard's shrink); the actuator keeps one."""
    before = pool_size(inspector, WORKER2)
    answer = api(actuator, f"/api/worker/pool/shrink/{WORKER2}", params={"n": str(before + 3)})
    assert answer.status_code == 200
    assert answer.json()["message"] == f"Shrinking '{WORKER2}' worker's pool by {before - 1}"
    assert answer.json()["workers"][0]["note"] == (f"n clipped from {before + 3} to {before - 1}: pool has {before} "
                                                   "processes, a pool keeps at least 1 process")
    wait_for(lambda: pool_size(inspector, WORKER2) == 1, timeout=20, what="worker2 to shrink to 1")
    answer = api(actuator, f"/api/worker/pool/shrink/{WORKER2}", params={"n": "1"})
    assert answer.status_code == 403
    assert answer.json()["error"] == (f"Failed to shrink '{WORKER2}' worker's pool: bounds: pool of {WORKER2} has 1 "
                                      "processes and a pool keeps at least 1 process: shrink by 1 clipped to 0")
    assert api(actuator, f"/api/worker/pool/grow/{WORKER2}", params={"n": str(before - 1)}).status_code == 200
    wait_for(lambda: pool_size(inspector, WORKER2) == before, timeout=20, what="worker2 to grow back")


async def test_the_rule_files_limits_bound_manual_actions(actuator, actuator_client, module_broker_url, inspector):
    before = pool_size(inspector, WORKER2)
    ceiling = before + 1
    client = await actuator_client(f"limits: {{max_pool: {ceiling}}}\nrules: []\n", module_broker_url)
    answer = await client.post(f"/api/worker/pool/grow/{WORKER2}", params={"n": "10"}, headers=AUTH_HEADERS)
    assert (answer.status, (await answer.json())["message"]) == (200, f"Growing '{WORKER2}' worker's pool by 1")
    wait_for(lambda: pool_size(inspector, WORKER2) == ceiling, timeout=20, what="worker2 to grow to max_pool")
    answer = await client.post(f"/api/worker/pool/grow/{WORKER2}", params={"n": "1"}, headers=AUTH_HEADERS)
    assert answer.status == 403
    assert (await answer.json())["error"] == (f"Failed to grow '{WORKER2}' worker's pool: bounds: pool of {WORKER2} has "
                                              f"{ceiling} processes and max_pool is {ceiling}: grow by 1 clipped to 0")
    answer = await client.post(f"/api/worker/pool/autoscale/{WORKER3}", params={"min": "1", "max": "99"},
                               headers=AUTH_HEADERS)
    assert (await answer.json())["message"] == f"Autoscaling '{WORKER3}' worker (min=1, max={ceiling})"
    assert autoscaler(inspector, WORKER3)["max"] == ceiling
    assert (await client.post(f"/api/worker/pool/shrink/{WORKER2}", headers=AUTH_HEADERS)).status == 200
    wait_for(lambda: pool_size(inspector, WORKER2) == before, timeout=20, what="worker2 to shrink back")


def test_unknown_worker_is_404(actuator):
    answer = api(actuator, "/api/worker/pool/grow/celery@nowhere", params={"n": "1"})
    assert answer.status_code == 404 and answer.json()["error"] == "Unknown worker 'celery@nowhere'"


def test_refusals_are_403_with_the_reason(actuator, inspector):
    answer = api(actuator, "/api/worker/pool/grow/celery@worker3", params={"n": "1"})
    assert answer.status_code == 403
    assert answer.json()["error"] == ("Failed to grow 'celery@worker3' worker's pool: "
                                      "worker uses --autoscale; use autoscale (not pool_grow)")
    answer = api(actuator, "/api/worker/pool/autoscale/celery@worker1", params={"min": "1", "max": "3"})
    assert answer.status_code == 403 and "not started with --autoscale" in answer.json()["error"]
    # The worker itself refuses: its error text comes back.
    answer = api(actuator, "/api/task/rate-limit/no.such.task", data={"ratelimit": "1/s", "workername": WORKER1})
    assert answer.status_code == 403
    assert answer.json()["error"] == "Failed to set rate limit on no.such.task: unknown task"


def test_no_credentials_is_401_and_recorded_nowhere(actuator, inspector):
    before = pool_size(inspector, WORKER1)
    assert api(actuator, "/api/worker/pool/grow/celery@worker1", auth=None, params={"n": "2"}).status_code == 401
    assert requests.get(f"{actuator.url}/api/queues/length", timeout=5).status_code == 401
    recorded = requests.get(f"{actuator.url}/actions", params={"worker": WORKER1, "command": "pool_grow"},
                            auth=AUTH, timeout=5).json()["actions"]
    assert recorded == [] and pool_size(inspector, WORKER1) == before


def test_every_api_action_is_in_the_audit_log(actuator):
    records = requests.get(f"{actuator.url}/actions", params={"source": "api", "limit": "1000"},
                           auth=AUTH, timeout=5).json()["actions"]
    assert {(r["command"], r["outcome"]) for r in records} >= {
        ("pool_grow", "sent"), ("pool_shrink", "sent"), ("autoscale", "sent"), ("add_consumer", "sent"),
        ("cancel_consumer", "sent"), ("time_limit", "sent"), ("rate_limit", "sent"),
        ("pool_grow", "invalid"), ("pool_grow", "no_targets"), ("pool_grow", "refused"), ("rate_limit", "failed")}
    assert all(r["principal"] == "basic:admin" for r in records)


def test_queue_lengths_count_priority_subqueues_and_keep_names_exact(actuator, inspector, module_broker_url):
    client = Celery("producer", broker=module_broker_url, set_as_current=False)
    odd = "<script>alert(1)</script>"
    try:
        client.send_task("demo.sleep", args=(120,), queue="busy")
        wait_for(lambda: inspector.control.inspect(destination=[BUSY], timeout=2).active().get(BUSY),
                 what="the busy worker to start its long task")
        for priority in (0, 0, 0, 6, 9):
            client.send_task("demo.add", args=(1, 2), queue="busy", priority=priority)
        assert api(actuator, f"/api/worker/queue/add-consumer/{WORKER1}", params={"queue": odd}).status_code == 200
        wait_for(lambda: odd in consumed_queues(inspector, WORKER1), what="worker1 to consume the odd queue")
        answer = requests.get(f"{actuator.url}/api/queues/length", auth=AUTH, timeout=10)
    finally:
        client.close()
    assert answer.status_code == 200
    lengths = {q["name"]: q["messages"] for q in answer.json()["active_queues"]}
    assert lengths["busy"] == 5 and lengths[odd] == 0 and lengths["celery"] == 0
    assert odd in answer.text
