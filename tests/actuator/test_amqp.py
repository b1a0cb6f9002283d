"""The actuator on RabbitMQ (when the machine runs one on 127.0.0.1:5672): remote control and queue
lengths by passive declare. Names are unique per run, so other users of the broker never interfere."""
from __future__ import annotations

import socket
import uuid

import pytest
from celery import Celery

from tests.actuator.conftest import AUTH_HEADERS
from tests.actuator.payloads import backlog
from tests.support.inspection import control_app, pool_size
from tests.support.polling import wait_for
from tests.support.workers import launch_worker, wait_until_ready

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
RUN = uuid.uuid4().hex[:8]
QUEUE, WORKER = f"actuator-{RUN}", f"amqp-{RUN}@actuator-test"
RULES = """
    rules:
      - name: grow
        match: {alertname: CeleryQueueBacklog}
        actions:
          - {command: pool_grow, workers: {consuming: "{{ labels.queue_name }}"}, n: 2}
"""


def rabbitmq_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not rabbitmq_answers(), reason="no RabbitMQ on 127.0.0.1:5672")


@pytest.fixture(scope="module")
def amqp_worker():
    worker = launch_worker(AMQP_URL, WORKER, queues=[QUEUE], concurrency=1,
                           extra_args=["--prefetch-multiplier", "1"])
    wait_until_ready([worker])
    app = control_app(AMQP_URL)
    yield app
    worker.kill()
    with app.connection_for_write() as connection:
        connection.default_channel.queue_delete(QUEUE)
    app.close()


async def test_webhook_and_queue_length_on_rabbitmq(actuator_client, amqp_worker):
    inspector = amqp_worker
    client = await actuator_client(RULES, AMQP_URL)
    before = pool_size(inspector, WORKER)
    answer = await client.post("/webhook", json=backlog(QUEUE, 500), headers=AUTH_HEADERS)
    action = (await answer.json())["alerts"][0]["actions"][0]
    assert (action["outcome"], action["workers"]) == ("sent", [{"worker": WORKER, "outcome": "ok",
                                                               "detail": "pool will grow"}])
    wait_for(lambda: pool_size(inspector, WORKER) == before + 2, timeout=20, what="the pool to grow by 2")

    producer = Celery("producer", broker=AMQP_URL, set_as_current=False)
    try:
        for _ in range(3):  # one per process: every process busy for a minute
            producer.send_task("demo.sleep", args=(60,), queue=QUEUE)
        wait_for(lambda: len(_ask(inspector, "active")) == 3, what="three long tasks to run")
        for _ in range(4):
            producer.send_task("demo.add", args=(1, 2), queue=QUEUE)
        # Prefetch 1 per process (grown with the pool): the worker holds 3, the queue keeps 1.
        wait_for(lambda: len(_ask(inspector, "reserved")) == 3, what="three messages reserved")
    finally:
        producer.close()
    answer = await client.get("/api/queues/length", headers=AUTH_HEADERS)
    assert {"name": QUEUE, "messages": 1} in (await answer.json())["active_queues"]


def _ask(inspector: Celery, method: str) -> list:
    return getattr(inspector.control.inspect(destination=[WORKER], timeout=2), method)()[WORKER]
