"""The exporter as a process against a real Redis broker and real prefork workers.

Workers and the exporter start once for the module; every test uses its own queue or worker so
that the counts it asserts are its own.
"""
from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
import redis
from celery import Celery

from tests.exporter.captures import envelope
from tests.exporter.promtool import promtool_findings
from tests.support.exporter import start_exporter

HEARTBEAT_TIMEOUT = 3.0
AUTO_HEARTBEAT_TIMEOUT = 6.0
COUNTDOWN = 2.0


@pytest.fixture(scope="module")
def exporter(module_broker_url):
    process = start_exporter(module_broker_url, "--queues", "celery,backlog",
                             "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def app(module_broker_url):
    app = Celery("producer", broker=module_broker_url, set_as_current=False)
    app.conf.task_send_sent_event = True
    yield app
    app.close()


@pytest.fixture(scope="module")
def mix_worker(module_worker_factory, exporter):
    return module_worker_factory("mix@autopilot-test", queues=["mix"], concurrency=2)


def test_known_mix_counts_every_state(exporter, app, mix_worker):
    # A task-received may overtake its task-sent; the queue then comes from inspection.
    exporter.wait_metric("celery_worker_consumer", 1, hostname=mix_worker.name, queue_name="mix")
    n_add, n_mul, m_fail, k_retries = 5, 3, 2, 2
    for i in range(n_add):
        app.send_task("demo.add", args=(i, i), queue="mix")
    for i in range(n_mul):
        app.send_task("demo.mul", args=(i, 2), queue="mix")
    for _ in range(m_fail):
        app.send_task("demo.fail", queue="mix")
    app.send_task("demo.retry", args=(k_retries,), queue="mix")
    revoked_id = str(uuid.uuid4())
    replies = app.control.revoke(revoked_id, destination=[mix_worker.name], reply=True, timeout=5)
    assert replies, "the worker did not acknowledge the revoke"
    app.send_task("demo.sleep", args=(0,), queue="mix", task_id=revoked_id)

    worker = {"hostname": mix_worker.name, "queue_name": "mix"}
    # Pool processes flush their event buffers independently: wait for the last of each kind.
    exporter.wait_metric("celery_task_succeeded_total", 1, name="demo.retry", **worker)
    exporter.wait_metric("celery_task_retried_total", k_retries, name="demo.retry", **worker)
    exporter.wait_metric("celery_task_revoked_total", 1, name="demo.sleep", **worker)
    exporter.wait_metric("celery_task_failed_total", m_fail, name="demo.fail", exception="DemoError", **worker)
    exporter.wait_metric("celery_task_succeeded_total", n_mul, name="demo.mul", **worker)
    exporter.wait_metric("celery_task_sent_total", 1 + k_retries, name="demo.retry", hostname="generic",
                         queue_name="mix")
    metrics = exporter.wait_metric("celery_task_succeeded_total", n_add, name="demo.add", **worker)
    executions = {"demo.add": n_add, "demo.mul": n_mul, "demo.fail": m_fail, "demo.retry": 1 + k_retries}
    # Producers, and the worker that publishes each retry again, share the generic hostname.
    for name, sent in [("demo.add", n_add), ("demo.mul", n_mul), ("demo.fail", m_fail),
                       ("demo.retry", 1 + k_retries), ("demo.sleep", 1)]:
        assert metrics.value("celery_task_sent_total", name=name, hostname="generic", queue_name="mix") == sent
    for name, runs in executions.items():
        assert metrics.value("celery_task_received_total", name=name, **worker) == runs
        assert metrics.value("celery_task_started_total", name=name, **worker) == runs
        assert metrics.value("celery_task_queue_wait_time_count", name=name, **worker) == runs
    assert metrics.value("celery_task_succeeded_total", name="demo.mul", **worker) == n_mul
    assert metrics.value("celery_task_succeeded_total", name="demo.fail", **worker) == 0
    assert metrics.value("celery_task_retried_total", name="demo.retry", **worker) == k_retries
    assert metrics.value("celery_task_revoked_total", name="demo.sleep", **worker) == 1
    assert metrics.value("celery_task_received_total", name="demo.sleep", **worker) == 0
    finished = {"demo.add": n_add, "demo.mul": n_mul, "demo.fail": m_fail, "demo.retry": 1}
    for name, count in finished.items():
        assert metrics.value("celery_task_runtime_count", name=name, **worker) == count
    # Nothing lost its queue: every task series is labelled with the queue the task went to.
    assert {l["queue_name"] for l, _ in metrics.matching("celery_task_started_total")} == {"mix"}
    assert metrics.value("celery_exporter_tasks_in_flight") == 0


def test_queue_wait_without_task_sent_counts_from_the_eta_and_from_each_retry(exporter, module_broker_url,
                                                                           module_worker_factory):
    """Celery's default: no task-sent, from the producer nor from the worker's retries."""
    worker = module_worker_factory("nosent@autopilot-test", queues=["nosent"], concurrency=2,
                                   env={"DEMO_SENT_EVENTS": "0"})
    exporter.wait_metric("celery_worker_consumer", 1, hostname=worker.name, queue_name="nosent")
    producer = Celery("nosent-producer", broker=module_broker_url, set_as_current=False)
    try:
        producer.send_task("demo.add", args=(1, 1), queue="nosent", countdown=COUNTDOWN)
        producer.send_task("demo.retry_later", args=(1, COUNTDOWN), queue="nosent")
    finally:
        producer.close()
    labels = {"hostname": worker.name, "queue_name": "nosent"}
    exporter.wait_metric("celery_task_succeeded_total", 1, name="demo.add", **labels)
    metrics = exporter.wait_metric("celery_task_succeeded_total", 1, name="demo.retry_later", **labels)
    assert metrics.total("celery_task_sent_total", queue_name="nosent") == 0, "task-sent events were sent"
    for name, starts in [("demo.add", 1), ("demo.retry_later", 2)]:
        assert metrics.value("celery_task_queue_wait_time_count", name=name, **labels) == starts
        # An idle worker starts a task at its eta: its wait is near 0, not the countdown.
        wait = metrics.value("celery_task_queue_wait_time_sum", name=name, **labels)
        assert wait < COUNTDOWN / 2, f"{name} waited {wait:.2f}s in all, counted from before its eta"


def test_priority_backlog_is_counted_in_full_and_consumers_match_workers(exporter, app, mix_worker,
                                                                         module_worker_factory):
    second = module_worker_factory("mix2@autopilot-test", queues=["mix"], concurrency=3)
    producer = Celery("prio", broker=app.conf.broker_url, set_as_current=False)
    producer.conf.broker_transport_options = {"priority_steps": list(range(10))}
    for i in range(25):
        producer.send_task("demo.add", args=(i, i), queue="backlog", priority=i % 10)
    producer.close()
    client = redis.Redis.from_url(app.conf.broker_url)
    lists = [k for k in client.keys("backlog*")]
    assert len(lists) == 10, f"expected every priority level in its own list, got {lists}"
    exporter.wait_metric("celery_queue_length", 25, queue_name="backlog")
    metrics = exporter.wait_metric("celery_active_process_count", 5, queue_name="mix")
    assert metrics.value("celery_active_worker_count", queue_name="mix") == 2
    # Redis counts no consumers: this is the same count of up workers consuming the queue, by
    # definition (RabbitMQ's own consumer count is checked in test_amqp_integration).
    assert metrics.value("celery_active_consumer_count", queue_name="mix") == 2
    assert metrics.value("celery_active_consumer_count", queue_name="backlog") == 0
    assert metrics.value("celery_worker_consumer", hostname=second.name, queue_name="mix") == 1
    second.kill()


def test_pool_processes_follow_pool_grow(exporter, module_worker_factory):
    worker = module_worker_factory("grow@autopilot-test", queues=["grow"], concurrency=1)
    exporter.wait_metric("celery_worker_pool_processes", 1, hostname=worker.name)
    control = worker.control_app()
    assert control.control.pool_grow(1, destination=[worker.name], reply=True, timeout=5)
    control.close()
    metrics = exporter.wait_metric("celery_worker_pool_processes", 2, hostname=worker.name)
    assert metrics.value("celery_active_process_count", queue_name="grow") == 2


def test_sigkilled_worker_goes_down_within_the_heartbeat_timeout_and_keeps_its_series(
        exporter, app, module_broker_url, module_worker_factory):
    """Watched by the module's exporter (--heartbeat-timeout 3) and by one on the default, `auto`:
    3 x the 2 s heartbeat period the worker announces."""
    auto = start_exporter(module_broker_url)
    try:
        worker = module_worker_factory("doomed@autopilot-test", queues=["doomed"], concurrency=1)
        app.send_task("demo.add", args=(1, 1), queue="doomed")
        exporter.wait_metric("celery_task_succeeded_total", 1, name="demo.add", hostname=worker.name)
        app.send_task("demo.sleep", args=(60,), queue="doomed")
        for watcher in (exporter, auto):
            watcher.wait_metric("celery_worker_tasks_active", 1, hostname=worker.name)
            watcher.wait_metric("celery_active_worker_count", 1, queue_name="doomed")
        worker.kill()
        killed_at = time.monotonic()
        for watcher, timeout in ((exporter, HEARTBEAT_TIMEOUT), (auto, AUTO_HEARTBEAT_TIMEOUT)):
            watcher.wait_metric("celery_worker_up", 0, hostname=worker.name, timeout=timeout + 5)
            took = time.monotonic() - killed_at
            # Down no later than the timeout after the last heartbeat, which came at most one
            # period (2 s) before the kill; plus one polling interval.
            assert took <= timeout + 0.5, f"worker_up went to 0 only {took:.1f}s after SIGKILL"
        assert took >= AUTO_HEARTBEAT_TIMEOUT - 2.5, f"auto timeout: down {took:.1f}s after SIGKILL, too early"
        for watcher in (exporter, auto):
            metrics = watcher.metrics()
            assert metrics.value("celery_task_succeeded_total", name="demo.add", hostname=worker.name) == 1
            assert metrics.value("celery_worker_pool_processes", hostname=worker.name) == 1
            assert metrics.value("celery_active_worker_count", queue_name="doomed") == 0
            assert metrics.value("celery_worker_tasks_active", hostname=worker.name) == 0
    finally:
        auto.stop()


def test_garbage_on_the_events_channel_is_counted_and_good_events_still_counted(exporter, app, mix_worker):
    db = int(app.conf.broker_url.rsplit("/", 1)[1])
    client = redis.Redis.from_url(app.conf.broker_url)
    before = exporter.metrics()
    good_before = before.value("celery_task_succeeded_total", name="demo.add",
                               hostname=mix_worker.name, queue_name="mix") or 0
    channel = f"/{db}.celeryev/task.multi"
    garbage = [
        ("invalid_json", b"{this is not json"),
        ("invalid_json", b'{"body": "\xff", "content-type": "application/json", "properties": {}}'),
        ("too_deep", b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("bad_envelope", b'["an", "array"]'),
        ("bad_base64", b'{"body": "@@@", "content-type": "application/json", "properties": {"body_encoding": "base64"}}'),
        ("too_large", b'{"body": "' + b"A" * 2_000_000 + b'"}'),
        ("missing_field", b'{"body": "{\\"type\\": \\"task-started\\"}", "content-type": "application/json", "properties": {}}'),
        ("wrong_type", b'{"body": "{\\"type\\": \\"task-started\\", \\"hostname\\": 1, \\"timestamp\\": 1}", "content-type": "application/json", "properties": {}}'),
    ]
    # Good messages around the bad ones in one pipelined write, so that they reach the exporter in
    # the same socket reads: none may be lost with a bad neighbour.
    pipe = client.pipeline(transaction=False)
    for i in range(5):
        pipe.publish(channel, sent_event(f"before-{i}", "garbage.before"))
    for _, payload in garbage:
        pipe.publish(channel, payload)
    for i in range(50):
        pipe.publish(channel, sent_event(f"after-{i}", "garbage.after"))
    assert all(receivers == 1 for receivers in pipe.execute()), "the exporter is not subscribed (or a bad message cut its connection)"
    exporter.wait_metric("celery_task_sent_total", 50, name="garbage.after")
    app.send_task("demo.add", args=(2, 2), queue="mix")
    after = exporter.wait_metric("celery_task_succeeded_total", good_before + 1, name="demo.add",
                                 hostname=mix_worker.name, queue_name="mix")
    assert after.value("celery_task_sent_total", name="garbage.before") == 5
    for reason, expected in Counter(reason for reason, _ in garbage).items():
        delta = (after.value("celery_exporter_decode_errors_total", reason=reason)
                 - before.value("celery_exporter_decode_errors_total", reason=reason))
        assert delta == expected, f"{reason}: counted {delta} times, expected {expected}"
    assert after.value("celery_exporter_decode_errors_total", reason="internal") == 0
    assert (after.value("celery_exporter_source_errors_total", source="events")
            == before.value("celery_exporter_source_errors_total", source="events")), "the connection was dropped"
    assert exporter.proc.poll() is None


def sent_event(uuid: str, name: str) -> bytes:
    return envelope({"type": "task-sent", "hostname": "gen1@garbage", "uuid": uuid, "name": name,
                     "queue": "garbage", "timestamp": time.time()}, routing_key="task.sent")


def test_promtool_finds_nothing_in_a_real_scrape(exporter, mix_worker):
    exporter.wait_metric("celery_worker_up", 1, hostname=mix_worker.name)
    assert promtool_findings(exporter.metrics().text) == []


def test_autoscaler_bounds_are_reported(exporter, module_worker_factory):
    worker = module_worker_factory("autoscale@autopilot-test", queues=["autoscale"], concurrency=1,
                                   extra_args=["--autoscale", "3,1"])
    metrics = exporter.wait_metric("celery_worker_pool_autoscaler_max", 3, hostname=worker.name)
    assert metrics.value("celery_worker_pool_autoscaler_min", hostname=worker.name) == 1
    worker.kill()
