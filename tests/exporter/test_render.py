"""The hand-written exposition: parseable, escaped, cumulative, and clean under promtool."""
from __future__ import annotations

import time

from exporter.aggregates import STATES, Aggregates
from exporter.liveness import Liveness
from exporter.poll_results import PollResults, QueueDepth, WorkerStats
from exporter.processor import EventProcessor
from exporter.render import Renderer
from exporter.settings import DEFAULT_QUEUE_WAIT_BUCKETS, DEFAULT_RUNTIME_BUCKETS
from exporter.snapshot import take_snapshot
from tests.exporter.captures import capture, envelope
from tests.exporter.promtool import promtool_findings
from tests.support.exporter import Metrics

LIVENESS = Liveness(heartbeat_timeout=None, inspect_interval=5, inspect_timeout=1, purge_after=1800)


def rendered(raws: list[bytes], polls: PollResults | None = None) -> str:
    aggregates = Aggregates(DEFAULT_RUNTIME_BUCKETS, DEFAULT_QUEUE_WAIT_BUCKETS)
    processor = EventProcessor(aggregates)
    processor.feed_many(raws)
    return b"".join(Renderer().render(take_snapshot(aggregates, processor, polls or PollResults(), LIVENESS,
                                                   ("celery",)))).decode()


def test_capture_renders_to_parseable_cumulative_histograms():
    metrics = Metrics(rendered(capture("prefork")))
    labels = {"name": "perf.add", "hostname": "w1@vm", "queue_name": "celery"}
    assert metrics.value("celery_task_succeeded_total", **labels) == 3
    assert metrics.value("celery_task_failed_total", name="perf.fail", exception="ValueError") == 1
    buckets = [v for l, v in metrics.matching("celery_task_runtime_bucket", **labels)]
    assert buckets == sorted(buckets) and buckets[-1] == 3
    assert metrics.value("celery_task_runtime_bucket", le="+Inf", **labels) == 3
    assert metrics.value("celery_task_runtime_count", **labels) == 3
    assert metrics.value("celery_task_queue_wait_time_count", **labels) == 3
    assert metrics.value("celery_exporter_events_received_total", type="task-sent") == 6
    assert metrics.value("celery_exporter_decode_errors_total", reason="invalid_json") == 0


def test_awkward_label_values_survive_escaping():
    name = 'odd "task" \\ with\nnewline and 100% {braces}'
    text = rendered([envelope([
        {"type": "task-sent", "hostname": "gen1@h", "uuid": "1", "name": name, "queue": "q\\1", "timestamp": 1.0},
        {"type": "task-started", "hostname": 'w"1@h', "uuid": "1", "timestamp": 2.0},
        {"type": "task-failed", "hostname": 'w"1@h', "uuid": "1", "exception": 'Weird"Error\\(x)', "timestamp": 3.0},
    ])])
    metrics = Metrics(text)
    assert metrics.value("celery_task_sent_total", name=name, hostname="generic", queue_name="q\\1") == 1
    assert metrics.value("celery_task_failed_total", name=name, hostname='w"1@h', queue_name="q\\1",
                         exception='Weird"Error\\') == 1
    assert metrics.value("celery_task_queue_wait_time_count", name=name) == 1
    assert promtool_findings(text) == []


def test_worker_and_queue_metrics_from_poll_results():
    polls = PollResults()
    polls.stats["w1@vm"] = WorkerStats(pool_processes=3, max_concurrency=4, autoscaler_min=1,
                                       autoscaler_max=4, prefetch_count=12, max_rss_bytes=1024)
    polls.consumed["w1@vm"] = ("celery", "other")
    polls.queues = {"celery": QueueDepth(7), "other": QueueDepth(2, consumers=5)}
    polls.queues_valid_until = time.monotonic() + 60
    heartbeat = {"type": "worker-heartbeat", "hostname": "w1@vm", "freq": 2.0, "active": 2,
                 "timestamp": 5.0}
    metrics = Metrics(rendered([envelope(heartbeat)], polls))
    assert metrics.value("celery_worker_up", hostname="w1@vm") == 1
    assert metrics.value("celery_worker_tasks_active", hostname="w1@vm") == 2
    assert metrics.value("celery_worker_last_heartbeat_timestamp_seconds", hostname="w1@vm") == 5.0
    assert metrics.value("celery_worker_pool_processes", hostname="w1@vm") == 3
    assert metrics.value("celery_worker_pool_autoscaler_max", hostname="w1@vm") == 4
    assert metrics.value("celery_worker_consumer", hostname="w1@vm", queue_name="other") == 1
    assert metrics.value("celery_queue_length", queue_name="celery") == 7
    assert metrics.value("celery_active_consumer_count", queue_name="celery") == 1
    assert metrics.value("celery_active_consumer_count", queue_name="other") == 5
    assert metrics.value("celery_active_process_count", queue_name="other") == 3
    assert promtool_findings(metrics.text) == []


def test_reused_histogram_text_follows_new_observations():
    aggregates = Aggregates(DEFAULT_RUNTIME_BUCKETS, DEFAULT_QUEUE_WAIT_BUCKETS)
    processor = EventProcessor(aggregates)
    renderer = Renderer()

    def scrape() -> Metrics:
        return Metrics(b"".join(renderer.render(take_snapshot(aggregates, processor, PollResults(), LIVENESS,
                                                              ()))).decode())

    def succeeded(uuid: str, hostname: str, runtime: float) -> bytes:
        return envelope({"type": "task-succeeded", "hostname": hostname, "uuid": uuid, "runtime": runtime,
                         "timestamp": 1.0})

    processor.feed_many([succeeded("1", "a@h", 0.2), succeeded("2", "b@h", 0.2)])
    first = scrape()
    processor.feed(succeeded("3", "a@h", 3.0))
    second = scrape()
    assert second.value("celery_task_runtime_count", hostname="a@h") == 2
    assert second.value("celery_task_runtime_bucket", hostname="a@h", le="0.25") == 1
    assert second.value("celery_task_runtime_bucket", hostname="a@h", le="5.0") == 2
    assert second.value("celery_task_runtime_sum", hostname="a@h") == 3.2
    assert second.matching("celery_task_runtime_bucket", hostname="b@h") == \
        first.matching("celery_task_runtime_bucket", hostname="b@h")
    aggregates.purge_hostnames({"b@h"})
    assert scrape().matching("celery_task_runtime_count", hostname="b@h") == []


def test_counters_are_rendered_from_0_and_histograms_from_receipt():
    """rate() and increase() only see a first increment that follows a scrape at 0."""
    metrics = Metrics(rendered([envelope([
        {"type": "task-sent", "hostname": "gen1@h", "uuid": "1", "name": "t.a", "queue": "q", "timestamp": 1.0},
        {"type": "task-received", "hostname": "w@h", "uuid": "1", "name": "t.a", "timestamp": 2.0},
    ])]))
    expected = {"generic": {"sent": 1}, "w@h": {"received": 1}}
    for state in STATES:
        for hostname, counts in expected.items():
            assert metrics.value(f"celery_task_{state}_total", hostname=hostname) == counts.get(state, 0)
    for histogram in ("celery_task_runtime", "celery_task_queue_wait_time"):
        assert metrics.value(f"{histogram}_count", hostname="w@h") == 0
        assert metrics.value(f"{histogram}_bucket", hostname="w@h", le="+Inf") == 0
        # A producer's series never fills a histogram: none is rendered for it.
        assert metrics.value(f"{histogram}_count", hostname="generic") is None
    assert metrics.matching("celery_task_failed_total") == []
    assert promtool_findings(metrics.text) == []


def test_queue_depths_past_their_age_are_not_shown():
    polls = PollResults()
    polls.queues = {"celery": QueueDepth(7)}
    polls.queues_valid_until = time.monotonic() - 0.1
    metrics = Metrics(rendered([], polls))
    assert metrics.value("celery_queue_length", queue_name="celery") is None
    assert metrics.value("celery_active_worker_count", queue_name="celery") == 0


def test_a_worker_that_is_down_has_no_active_tasks():
    heartbeat = {"type": "worker-heartbeat", "hostname": "w1@vm", "freq": 2.0, "active": 2, "timestamp": 5.0}
    metrics = Metrics(rendered([envelope(heartbeat), envelope({**heartbeat, "type": "worker-offline"})]))
    assert metrics.value("celery_worker_up", hostname="w1@vm") == 0
    assert metrics.value("celery_worker_tasks_active", hostname="w1@vm") == 0
