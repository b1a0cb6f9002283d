"""Flower's pool restart, shutdown and revoke: refused (403, audited) unless ``--allow-api`` names
them, and when allowed they really restart, stop and revoke on real workers."""
from __future__ import annotations

import pytest
import requests
from celery import Celery
from click.testing import CliRunner

from actuator.cli import main

from tests.actuator.conftest import AUTH
from tests.support.inspection import pool_pids
from tests.support.polling import wait_for

RESTARTABLE, PLAIN, DOOMED = "restartable@gated", "plain@gated", "doomed@gated"
GATED = ("pool_restart", "shutdown", "revoke")


@pytest.fixture(scope="module")
def workers(start_workers):
    started = start_workers({"name": RESTARTABLE, "queues": ["restartable"], "concurrency": 1,
                             "env": {"DEMO_POOL_RESTARTS": "1"}},
                            {"name": PLAIN, "queues": ["plain"], "concurrency": 1},
                            {"name": DOOMED, "queues": ["doomed"], "concurrency": 1})
    return {worker.name: worker for worker in started}


@pytest.fixture(scope="module")
def closed(workers, start_actuator):
    return start_actuator("rules: []\n")


@pytest.fixture(scope="module")
def allowed(workers, start_actuator):
    return start_actuator("rules: []\n", "--allow-api", ",".join(GATED))


@pytest.fixture(scope="module")
def producer(module_broker_url):
    client = Celery("producer", broker=module_broker_url, set_as_current=False)
    yield client
    client.close()


def post(actuator, path: str, **params) -> requests.Response:
    return requests.post(f"{actuator.url}{path}", params=params, auth=AUTH, timeout=30)


def actions(actuator, **filters) -> list[dict]:
    return requests.get(f"{actuator.url}/actions", params={"source": "api", **filters}, auth=AUTH,
                        timeout=5).json()["actions"]


@pytest.mark.parametrize(("command", "path", "failure"), [
    ("pool_restart", f"/api/worker/pool/restart/{RESTARTABLE}", f"Failed to restart the '{RESTARTABLE}' pool"),
    ("shutdown", f"/api/worker/shutdown/{RESTARTABLE}", f"Failed to shut down '{RESTARTABLE}' worker"),
    ("revoke", "/api/task/revoke/0b1c2d3e-0000-4000-8000-000000000000", "Failed to revoke"),
])
def test_each_is_403_unless_allowed_and_audited(closed, inspector, workers, command, path, failure):
    before = pool_pids(inspector, RESTARTABLE)
    answer = post(closed, path, terminate="true")
    assert answer.status_code == 403
    assert answer.json()["error"].startswith(failure)
    assert answer.json()["error"].endswith(f"is disabled: start the actuator with --allow-api {command} to allow it")
    [record] = actions(closed, command=command)
    assert (record["outcome"], record["principal"]) == ("refused", "basic:admin")
    assert pool_pids(inspector, RESTARTABLE) == before and workers[RESTARTABLE].proc.poll() is None


def test_pool_restart_replaces_the_pool_processes(allowed, inspector):
    before = pool_pids(inspector, RESTARTABLE)
    answer = post(allowed, f"/api/worker/pool/restart/{RESTARTABLE}")
    assert (answer.status_code, answer.json()["message"]) == (200, f"Restarting '{RESTARTABLE}' worker's pool")
    wait_for(lambda: pool_pids(inspector, RESTARTABLE).isdisjoint(before), timeout=20,
             what="the restarted pool to have new processes")


def test_pool_restart_is_refused_where_the_worker_does_not_allow_it(allowed):
    answer = post(allowed, f"/api/worker/pool/restart/{PLAIN}")
    assert answer.status_code == 403
    assert answer.json()["error"] == (f"Failed to restart the '{PLAIN}' pool: "
                                      "worker_pool_restarts is off in the worker's configuration")


def test_revoke_with_terminate_kills_the_running_task(allowed, inspector, producer):
    task = producer.send_task("demo.sleep", args=(300,), queue="plain")

    def running() -> bool:
        active = inspector.control.inspect(destination=[PLAIN], timeout=2, limit=1).active() or {}
        return any(request["id"] == task.id for request in active.get(PLAIN, []))
    wait_for(running, timeout=20, what="the long task to start")
    answer = post(allowed, f"/api/task/revoke/{task.id}", terminate="true", signal="SIGKILL")
    assert (answer.status_code, answer.json()["message"]) == (200, f"Revoked '{task.id}'")
    assert {w["worker"] for w in answer.json()["workers"]} == {RESTARTABLE, PLAIN, DOOMED}
    wait_for(lambda: not running(), timeout=20, what="the revoked task to be terminated")
    revoked = inspector.control.inspect(destination=[PLAIN], timeout=2, limit=1).revoked()[PLAIN]
    assert task.id in revoked
    [record] = actions(allowed, command="revoke")
    assert record["arguments"] == {"task_id": task.id, "terminate": True, "signal": "SIGKILL"}


def test_shutdown_stops_the_worker(allowed, workers):
    answer = post(allowed, f"/api/worker/shutdown/{DOOMED}")
    assert answer.status_code == 200
    assert answer.json()["message"] == "Shutting down!"
    assert answer.json()["workers"] == [{"worker": DOOMED, "outcome": "ok",
                                         "detail": "sent (a worker does not reply to shutdown)"}]
    assert workers[DOOMED].proc.wait(timeout=30) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--allow-api", "revoke,pool_grow"], "'pool_grow': expected a comma-separated list of pool_restart, shutdown"),
    (["--queues", "celery,bad\tqueue"], "'bad\\tqueue': expected a non-empty name"),
])
def test_serve_refuses_unknown_api_commands_and_bad_queue_names(tmp_path, args, message):
    rules = tmp_path / "rules.yml"
    rules.write_text("rules: []\n")
    done = CliRunner().invoke(main, ["serve", "--rules", str(rules), "--no-auth", *args])
    assert done.exit_code == 2 and message in done.output, done.output
