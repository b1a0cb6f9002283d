"""Flower's read API against real workers: ``GET /api/workers`` in Flower's shape, fresh on
``refresh``, cached otherwise; ``GET /api/queues`` and ``/api/queues/length`` listing consumed and
configured queues with the broker's counts."""
from __future__ import annotations

import datetime

import pytest
import requests
from celery import Celery

from actuator.cli import app_queues
from actuator.worker_inspector import INSPECT_METHODS
from tests.actuator.conftest import AUTH
from tests.support.inspection import consumed_queues, pool_size
from tests.support.polling import wait_for

READER, OTHER = "celery@reader1", "other@reader2"
WATCHED = "watched-only"
# Long enough that a test sees the cache answer, short enough never to wait for it.
CACHE_SECONDS = 60


@pytest.fixture(scope="module")
def actuator(start_workers, start_actuator):
    start_workers({"name": READER}, {"name": OTHER, "queues": ["other"], "concurrency": 1})
    return start_actuator("rules: []\n", "--queues", f"celery,{WATCHED}",
                          "--workers-max-age", str(CACHE_SECONDS))


@pytest.fixture(scope="module")
def producer(module_broker_url):
    client = Celery("producer", broker=module_broker_url, set_as_current=False)
    yield client
    client.close()


def get(actuator, path: str, auth=AUTH, **params) -> requests.Response:
    return requests.get(f"{actuator.url}{path}", params=params, auth=auth, timeout=30)


def test_workers_answer_in_flowers_shape_with_what_workers_report(actuator, inspector):
    answer = get(actuator, "/api/workers", refresh="1")
    assert answer.status_code == 200
    workers = answer.json()
    assert set(workers) == {READER, OTHER}
    for name, info in workers.items():
        assert set(info) == {*INSPECT_METHODS, "timestamp"}, name
        assert info["stats"]["pool"]["processes"] and isinstance(info["timestamp"], float)
        assert {q["name"] for q in info["active_queues"]} == consumed_queues(inspector, name)
        assert "demo.add" in info["registered"]
        assert info["active"] == [] and info["scheduled"] == [] and info["reserved"] == []
    assert len(workers[READER]["stats"]["pool"]["processes"]) == pool_size(inspector, READER) == 2
    assert workers[OTHER]["stats"]["pool"]["max-concurrency"] == 1


def test_without_refresh_the_cache_answers_and_refresh_inspects_again(actuator, inspector):
    first = get(actuator, "/api/workers").json()
    assert get(actuator, "/api/workers").json()[READER]["timestamp"] == first[READER]["timestamp"]
    grown = requests.post(f"{actuator.url}/api/worker/pool/grow/{OTHER}", params={"n": "1"}, auth=AUTH, timeout=30)
    assert grown.status_code == 200
    wait_for(lambda: pool_size(inspector, OTHER) == 2, timeout=20, what=f"{OTHER} to grow to 2")
    # The cached answer still shows the old pool; refresh shows what the worker has now.
    assert len(get(actuator, "/api/workers").json()[OTHER]["stats"]["pool"]["processes"]) == 1
    fresh = get(actuator, "/api/workers", refresh="true").json()
    assert len(fresh[OTHER]["stats"]["pool"]["processes"]) == 2
    assert fresh[OTHER]["timestamp"] > first[OTHER]["timestamp"]


def test_workername_selects_one_worker_and_an_unknown_one_is_404(actuator):
    one = get(actuator, "/api/workers", workername=READER, refresh="1")
    assert one.status_code == 200 and list(one.json()) == [READER]
    answer = get(actuator, "/api/workers", workername="celery@nowhere")
    assert (answer.status_code, answer.json()["error"]) == (404, "Unknown worker 'celery@nowhere'")
    answer = get(actuator, "/api/workers", workername="two words")
    assert answer.status_code == 400 and "workername" in answer.json()["error"]
    answer = get(actuator, "/api/workers", refresh="perhaps")
    assert answer.status_code == 400 and answer.json()["error"].startswith("refresh: got 'perhaps'")


def test_status_lists_each_worker_alive(actuator):
    assert get(actuator, "/api/workers", status="1").json() == {READER: True, OTHER: True}


def test_task_arguments_kombu_decodes_come_back_as_json(actuator, producer):
    """An eta task with a datetime argument: kombu hands the actuator a datetime object."""
    moment = datetime.datetime(2030, 1, 2, 3, 4, 5)
    sent = producer.send_task("demo.sleep", args=(moment,), queue="other", countdown=600)

    def scheduled():
        info = get(actuator, "/api/workers", workername=OTHER, refresh="1").json()[OTHER]
        return info["scheduled"]
    [entry] = wait_for(scheduled, timeout=20, what="the eta task to be scheduled on the worker")
    assert entry["request"]["id"] == sent.id
    assert entry["request"]["args"] == [moment.isoformat()]


def test_queues_list_consumed_and_configured_queues_with_the_brokers_counts(actuator, producer):
    odd = "<b>odd&queue</b>"
    for _ in range(3):
        producer.send_task("demo.add", args=(1, 2), queue=WATCHED)
    assert requests.post(f"{actuator.url}/api/worker/queue/add-consumer/{READER}", params={"queue": odd},
                         auth=AUTH, timeout=30).status_code == 200
    expected = [{"name": name, "messages": 3 if name == WATCHED else 0}
                for name in sorted(["celery", "other", WATCHED, odd])]
    answer = get(actuator, "/api/queues")
    assert answer.status_code == 200 and answer.json() == expected
    assert odd in answer.text
    assert get(actuator, "/api/queues/length").json() == {"active_queues": expected}


@pytest.mark.parametrize("path", ["/api/workers", "/api/queues", "/api/queues/length"])
def test_reading_needs_credentials(actuator, path):
    assert get(actuator, path, auth=None).status_code == 401
    assert get(actuator, path, auth=("admin", "wrong")).status_code == 401


def test_celery_actuator_lists_the_apps_queues_by_default():
    app = Celery("configured", set_as_current=False)
    app.conf.task_default_queue = "default"
    app.conf.task_queues = {"billing": {}, "default": {}}
    assert app_queues(app) == ("default", "billing")
