"""The path to the broker goes silent without closing: the exporter notices, and blames itself.

The exporter talks to the broker through a proxy that can stop forwarding without closing
anything; the worker talks to the broker directly and stays alive all along.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from celery import Celery

from tests.support.exporter import start_exporter
from tests.support.rabbitmq import throwaway_vhost
from tests.support.tcp_proxy import TcpProxy

BROKER_HEARTBEAT = 1.0
HEARTBEAT_TIMEOUT = 2.0
# Redis: silence before the PING, as long again for its answer; AMQP: two missed heartbeats.
# Plus the granularity of the read timeout and of the scrape polling.
DETECTION_BOUND = 2 * BROKER_HEARTBEAT + 1.0


@pytest.fixture(params=["redis", "amqp"])
def direct_url(request) -> Iterator[str]:
    if request.param == "redis":
        yield request.getfixturevalue("broker_url")
    else:
        with throwaway_vhost() as url:
            yield url


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    credentials = url.split("//", 1)[1].split("@", 1)[0] + "@" if "@" in url else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}"))


def test_a_silently_dead_connection_is_detected_and_workers_stay_up_meanwhile(direct_url, worker_factory):
    parts = urlsplit(direct_url)
    with TcpProxy(parts.hostname, parts.port) as proxy:
        exporter = start_exporter(through(proxy, direct_url), "--broker-heartbeat", str(BROKER_HEARTBEAT),
                                  "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT))
        app = Celery("producer", broker=direct_url, set_as_current=False)
        try:
            worker = worker_factory("cutoff@autopilot-test", broker_url=direct_url, queues=["cutoff"],
                                    concurrency=1)
            exporter.wait_metric("celery_worker_up", 1, hostname=worker.name)

            proxy.pause()
            paused_at = time.monotonic()
            exporter.wait_metric("celery_exporter_broker_connected", 0, timeout=DETECTION_BOUND + 5)
            took = time.monotonic() - paused_at
            assert took <= DETECTION_BOUND + 0.5, f"a dead connection went unnoticed for {took:.1f}s"

            # Cut off for longer than the heartbeat timeout: the exporter heard nobody, which
            # says nothing about the worker.
            while time.monotonic() - paused_at < DETECTION_BOUND + HEARTBEAT_TIMEOUT:
                assert exporter.metrics().value("celery_worker_up", hostname=worker.name) == 1, \
                    "the worker went down while the exporter was the one cut off"
                time.sleep(0.2)

            proxy.resume()
            exporter.wait_metric("celery_exporter_broker_connected", 1, timeout=10)
            app.send_task("demo.add", args=(1, 1), queue="cutoff")
            metrics = exporter.wait_metric("celery_task_succeeded_total", 1, name="demo.add",
                                           hostname=worker.name)
            assert metrics.value("celery_worker_up", hostname=worker.name) == 1
            assert metrics.value("celery_exporter_source_errors_total", source="events") >= 1
        finally:
            app.close()
            exporter.stop()
