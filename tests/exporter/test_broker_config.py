"""The broker as users configure it: TLS with client certificates, failover URLs, a custom
control exchange, and `celery -A proj exporter` taking all of it from the app."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis
from celery import Celery

from exporter.events_redis import channels
from tests.support.exporter import http_get, start_exporter
from tests.support.polling import wait_for
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer, RedisTls
from tests.support.tls import CertificateAuthority

BIN = Path(sys.executable).parent


@pytest.fixture
def tls_redis(certificate_authority: CertificateAuthority):
    """A Redis that speaks only TLS and wants a client certificate from the test CA."""
    server = RedisServer(tls=RedisTls.issue(certificate_authority))
    server.start()
    yield server
    server.close()


def test_rediss_with_a_private_ca_and_a_client_certificate(tls_redis):
    url = tls_redis.url(0)
    exporter = start_exporter(url, "--queues", "secure")
    app = Celery("producer", broker=url, set_as_current=False)
    app.conf.task_send_sent_event = True
    try:
        for _ in range(3):
            app.send_task("demo.add", args=(1, 1), queue="secure")
        metrics = exporter.wait_metric("celery_task_sent_total", 3, name="demo.add", queue_name="secure")
        assert metrics.value("celery_exporter_broker_connected") == 1
        exporter.wait_metric("celery_queue_length", 3, queue_name="secure")
    finally:
        app.close()
        exporter.stop()


def test_celery_subcommand_keeps_the_apps_failover_urls_and_control_exchange(broker_url, worker_factory):
    """The app's broker URL is a failover list whose first broker is down, and its workers answer
    remote control on an exchange of their own; the index page shows both brokers."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = {"DEMO_CONTROL_EXCHANGE": "autopilot.control"}
    worker = worker_factory("ctl@autopilot-test", queues=["ctl"], concurrency=2, env=env)
    exporter = start_exporter(broker_url, command=[str(BIN / "celery"), "-A", "demo.tasks", "exporter"],
                              env={**env, "CELERY_BROKER_URL": f"{dead};{broker_url}"})
    try:
        # Only inspection over the app's control exchange can know the pool size.
        exporter.wait_metric("celery_worker_pool_processes", 2, hostname=worker.name)
        exporter.wait_metric("celery_worker_consumer", 1, hostname=worker.name, queue_name="ctl")
        status, page = http_get(exporter.url + "/")
        assert status == 200
        assert dead in page and broker_url in page, "the index page does not show the failover list"
        assert 'href="metrics"' in page and 'href="healthz"' in page
    finally:
        exporter.stop()


def test_the_events_pattern_takes_prefix_and_exchange_literally(redis_server):
    """Glob characters in an exchange name or key prefix match only themselves."""
    pattern, channel = channels(5, "ev*[1]", "tenant?:")
    client = redis_server.client()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(pattern)
    wait_for(lambda: pubsub.get_message() is None and client.publish(channel + "/task.multi", b"mine") == 1,
             what="the pattern subscription")
    for other in ("tenantX:/5.ev*[1]/task.multi", "tenant?:/5.evil1/task.multi", "tenant?:/5.ev*1/x"):
        assert client.publish(other, b"not mine") == 0, f"{pattern!r} matched {other!r}"
    pubsub.close()
