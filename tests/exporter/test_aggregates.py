"""Events -> counters, histograms and liveness, fed through the real decode path."""
from __future__ import annotations

import time

import pytest

from exporter.aggregates import ORPHAN_GRACE, Aggregates, eta_timestamp, exception_label
from exporter.event_clock import EventClock
from exporter.liveness import Liveness
from exporter.processor import EventProcessor
from exporter.settings import DEFAULT_QUEUE_WAIT_BUCKETS, DEFAULT_RUNTIME_BUCKETS
from tests.exporter.captures import capture, envelope, event


def make(**kwargs) -> tuple[Aggregates, EventProcessor]:
    aggregates = Aggregates(DEFAULT_RUNTIME_BUCKETS, DEFAULT_QUEUE_WAIT_BUCKETS, **kwargs)
    return aggregates, EventProcessor(aggregates)


def counts(aggregates: Aggregates) -> dict[tuple[str, str, str], list[int]]:
    return {key: series.counts for key, series in aggregates.series.items()}


def test_prefork_capture_counts_every_state_with_name_and_queue():
    aggregates, processor = make()
    processor.feed_many(capture("prefork"))
    worker = "w1@vm"
    # sent, received, started, succeeded, retried, rejected, revoked
    assert counts(aggregates) == {
        # The client (gen9136@vm) and the pool process that published the retry (gen9098@vm).
        ("generic", "perf.add", "celery"): [3, 0, 0, 0, 0, 0, 0],
        ("generic", "perf.fail", "celery"): [1, 0, 0, 0, 0, 0, 0],
        ("generic", "perf.retry", "celery"): [2, 0, 0, 0, 0, 0, 0],
        (worker, "perf.add", "celery"): [0, 3, 3, 3, 0, 0, 0],
        (worker, "perf.fail", "celery"): [0, 1, 1, 0, 0, 0, 0],
        (worker, "perf.retry", "celery"): [0, 2, 2, 0, 1, 0, 0],
    }
    add = aggregates.series[(worker, "perf.add", "celery")]
    fail = aggregates.series[(worker, "perf.fail", "celery")]
    retry = aggregates.series[(worker, "perf.retry", "celery")]
    assert fail.failed == {"ValueError": 1}
    assert retry.failed == {"KeyError": 1}
    # Runtime: every finished task; queue wait: every start.
    assert (sum(add.runtime), sum(fail.runtime), sum(retry.runtime)) == (3, 1, 1)
    assert (sum(add.wait), sum(fail.wait), sum(retry.wait)) == (3, 1, 2)
    assert add.runtime_sum == pytest.approx(0.0002769530001387466 + 8.369499937543878e-05 + 7.757499952276703e-05)
    # failed runtime = failed.timestamp - started.timestamp
    assert fail.runtime_sum == pytest.approx(1795546088.1977932 - 1795546088.1921308)
    assert len(aggregates.in_flight) == 0
    assert aggregates.workers[worker].online is False
    assert processor.events_applied == 31 and processor.errors == {}


def sent(uuid: str, name: str = "t.a", queue: str = "q", ts: float = 100.0, **extra) -> dict:
    return {"type": "task-sent", "hostname": "gen1@h", "uuid": uuid, "name": name, "queue": queue,
            "timestamp": ts, **extra}


def lifecycle(uuid: str, name: str = "t.a") -> list[dict]:
    return [sent(uuid, name),
            {"type": "task-received", "hostname": "w@h", "uuid": uuid, "name": name, "timestamp": 101.0},
            {"type": "task-started", "hostname": "w@h", "uuid": uuid, "timestamp": 102.0},
            {"type": "task-succeeded", "hostname": "w@h", "uuid": uuid, "runtime": 0.5, "timestamp": 102.5}]


def test_a_task_sent_event_that_arrives_late_does_not_split_the_tasks_counts_across_queues():
    """A client publishes task-sent after the task: a busy worker's received and started can win."""
    aggregates, processor = make()
    task_sent, received, started, succeeded = lifecycle("late")
    for event in (received, started, task_sent, succeeded):
        processor.feed(envelope(event))
    worker_series = {key: c for key, c in counts(aggregates).items() if key[0] == "w@h"}
    # received, started and succeeded all under the queue the first of them was counted under.
    assert worker_series == {("w@h", "t.a", "unknown"): [0, 1, 1, 1, 0, 0, 0]}
    assert len(aggregates.in_flight) == 0


def test_the_task_sent_of_a_retry_starts_a_new_attempt():
    aggregates, processor = make()
    task_sent, received, started, _ = lifecycle("again")
    retried = {"type": "task-retried", "hostname": "w@h", "uuid": "again", "timestamp": 103.0}
    resent = sent("again", ts=104.0, retries=1)
    received_again = {**received, "timestamp": 110.0}
    started_again = {**started, "timestamp": 111.0}
    for event in (task_sent, received, started, retried, resent, received_again, started_again):
        processor.feed(envelope(event))
    series = aggregates.series[("w@h", "t.a", "q")]
    # The second attempt waited from its own task-sent (104 -> 111: 7 s), not from the first.
    assert series.wait_sum == pytest.approx((102.0 - 100.0) + (111.0 - 104.0))


def test_memory_does_not_grow_with_task_ids():
    aggregates, processor = make()
    for i in range(20_000):
        processor.feed(envelope(lifecycle(f"id-{i}")))
    assert len(aggregates.in_flight) == 0
    assert len(aggregates.series) == 2
    assert aggregates.series[("w@h", "t.a", "q")].counts[3] == 20_000


def test_in_flight_map_is_capped_and_evictions_counted():
    aggregates, processor = make(max_tasks_in_flight=10)
    processor.feed(envelope([sent(f"id-{i}") for i in range(100)]))
    assert len(aggregates.in_flight) == 10
    assert aggregates.in_flight_evicted == 90
    assert list(aggregates.in_flight)[0] == "id-90"


def test_series_cap_drops_new_series_and_counts_them():
    aggregates, processor = make(max_series=2)
    processor.feed(envelope([sent("a", "t.one"), sent("b", "t.two"), sent("c", "t.three"), sent("d", "t.three")]))
    assert sorted(k[1] for k in aggregates.series) == ["t.one", "t.two"]
    assert aggregates.series_dropped == 2


def test_allow_and_deny_globs_filter_task_names():
    aggregates, processor = make(task_allow=["billing.*", "mail.send"], task_deny=["billing.internal.*"])
    processor.feed(envelope([sent("1", "billing.charge"), sent("2", "billing.internal.sync"),
                             sent("3", "mail.send"), sent("4", "mail.sender"), sent("5", "other")]))
    assert sorted(k[1] for k in aggregates.series) == ["billing.charge", "mail.send"]


def test_queue_wait_counts_from_eta_and_queue_falls_back_to_routing_key():
    aggregates, processor = make()
    eta = "1970-01-01T00:03:20+00:00"  # 200.0
    processor.feed(envelope([
        sent("1", queue=None, routing_key="rk", eta=eta),
        {"type": "task-started", "hostname": "w@h", "uuid": "1", "timestamp": 230.0},
    ]))
    series = aggregates.series[("w@h", "t.a", "rk")]
    assert series.wait_sum == pytest.approx(30.0)


def received(uuid: str, ts: float, **extra) -> dict:
    return {"type": "task-received", "hostname": "w@h", "uuid": uuid, "name": "t.a", "timestamp": ts, **extra}


def started(uuid: str, ts: float) -> dict:
    return {"type": "task-started", "hostname": "w@h", "uuid": uuid, "timestamp": ts}


def test_without_task_sent_a_countdown_waits_from_its_eta():
    aggregates, processor = make()
    processor.feed(envelope([received("1", 40.0, eta="1970-01-01T00:01:40+00:00"), started("1", 100.5)]))
    series = aggregates.series[("w@h", "t.a", "unknown")]
    assert (sum(series.wait), series.wait_sum) == (1, pytest.approx(0.5))


def test_without_task_sent_a_retry_waits_from_its_own_receipt_or_eta():
    aggregates, processor = make()
    processor.feed(envelope([
        received("1", 10.0), started("1", 11.0),
        {"type": "task-retried", "hostname": "w@h", "uuid": "1", "timestamp": 11.5},
        received("1", 12.0, eta="1970-01-01T00:03:00+00:00"), started("1", 181.0),  # retry, countdown to 180
        {"type": "task-succeeded", "hostname": "w@h", "uuid": "1", "runtime": 0.1, "timestamp": 181.1},
        received("1", 200.0), started("1", 200.25),  # redelivered after its end
    ]))
    series = aggregates.series[("w@h", "t.a", "unknown")]
    assert (sum(series.wait), series.wait_sum) == (3, pytest.approx(1.0 + 1.0 + 0.25))


def test_with_task_sent_a_retry_waits_from_its_own_task_sent():
    aggregates, processor = make()
    processor.feed(envelope([sent("1", ts=10.0), received("1", 10.5), started("1", 11.0),
                             received("1", 12.0), sent("1", ts=11.9), started("1", 12.4)]))
    series = aggregates.series[("w@h", "t.a", "q")]
    assert (sum(series.wait), series.wait_sum) == (2, pytest.approx(1.0 + 0.5))


def test_task_started_arriving_after_the_tasks_end_keeps_name_and_queue():
    aggregates, processor = make()
    events = lifecycle("1")
    processor.feed(envelope([events[0], events[1], events[3], events[2]]))
    assert set(aggregates.series) == {("generic", "t.a", "q"), ("w@h", "t.a", "q")}
    series = aggregates.series[("w@h", "t.a", "q")]
    assert series.counts[2] == 1 and series.wait_sum == pytest.approx(2.0)
    assert len(aggregates.in_flight) == 0


def test_a_task_sent_again_is_the_last_to_be_evicted():
    aggregates, processor = make(max_tasks_in_flight=2)
    processor.feed(envelope([sent("a"), sent("b"), sent("a"), sent("c")]))
    assert list(aggregates.in_flight) == ["a", "c"]


@pytest.fixture
def eastern_local_time(monkeypatch):
    """The exporter's local timezone is not UTC."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("eta, expected", [
    ("1970-01-01T00:01:40+00:00", 100.0),
    ("1970-01-01T01:01:40+01:00", 100.0),
    ("1970-01-01T00:01:40Z", 100.0),
    ("1970-01-01T00:01:40", 100.0),  # naive: UTC, as Celery's workers read it by default
    ("next tuesday", None),
])
def test_eta_is_read_with_its_offset_and_naive_as_utc(eastern_local_time, eta, expected):
    assert eta_timestamp(eta) == expected


def test_task_seen_without_task_sent_takes_the_workers_single_queue():
    aggregates, processor = make()
    aggregates.single_queues = {"w@h": "only"}
    processor.feed(envelope([
        {"type": "task-received", "hostname": "w@h", "uuid": "1", "name": "t.a", "timestamp": 1.0},
        {"type": "task-received", "hostname": "other@h", "uuid": "2", "name": "t.a", "timestamp": 1.0},
        {"type": "task-started", "hostname": "w@h", "uuid": "3", "timestamp": 1.0},
    ]))
    assert set(aggregates.series) == {("w@h", "t.a", "only"), ("other@h", "t.a", "unknown"),
                                      ("w@h", "unknown", "only")}


@pytest.mark.parametrize("text, label", [
    ("ValueError('boom')", "ValueError"),
    ("Retry(Retry(...), KeyError('again'), 0)", "Retry"),
    ("NoParens", "NoParens"),
    ("reject requeue=False: order 1234 is gone", "Reject"),   # celery.exceptions.Reject's repr
    ("", "unknown"),
    (None, "unknown"),
    ("X" * 500 + "(", "X" * 120),
])
def test_exception_label_is_the_class_name(text, label):
    assert exception_label(text) == label


LIVENESS = Liveness(heartbeat_timeout=None, inspect_interval=5, inspect_timeout=1, purge_after=100)


def test_worker_is_down_after_three_missed_heartbeats_or_at_once_when_offline():
    aggregates, processor = make()
    beat = {"type": "worker-heartbeat", "hostname": "w@h", "freq": 2.0, "active": 1, "timestamp": 1.0}
    aggregates.apply(event(beat), now=1000.0)
    worker = aggregates.workers["w@h"]
    heard = aggregates.last_heard["w@h"]
    assert LIVENESS.is_up(worker, heard, None, now=1006.0)
    assert not LIVENESS.is_up(worker, heard, None, now=1006.1)
    aggregates.apply(event({**beat, "type": "worker-offline"}), now=1001.0)
    assert not LIVENESS.is_up(worker, aggregates.last_heard["w@h"], None, now=1001.0)


def test_auto_timeout_is_capped_at_a_minute_and_flag_overrides_it():
    worker = make()[0]
    worker.apply(event({"type": "worker-online", "hostname": "w@h", "freq": 300.0, "timestamp": 1.0}), now=0.0)
    events = worker.workers["w@h"]
    assert LIVENESS.is_up(events, 0.0, None, now=60.0) and not LIVENESS.is_up(events, 0.0, None, now=60.5)
    fixed = Liveness(heartbeat_timeout=10, inspect_interval=5, inspect_timeout=1, purge_after=100)
    assert not fixed.is_up(events, 0.0, None, now=10.5)


def test_worker_known_only_by_inspection_gets_two_rounds():
    assert LIVENESS.is_up(None, None, answered_at=0.0, now=11.0)
    assert not LIVENESS.is_up(None, None, answered_at=0.0, now=11.5)


def test_gone_hosts_are_purged_after_the_delay_with_all_their_series():
    aggregates, processor = make()
    processor.feed(envelope(lifecycle("1")))
    workers, last_heard = aggregates.copy_workers()
    now = last_heard["w@h"]
    assert LIVENESS.gone(workers, last_heard, {}, now + 50) == set()
    gone = LIVENESS.gone(workers, last_heard, {}, now + 101)
    assert gone == {"w@h", "generic"}
    aggregates.purge_hostnames({"w@h"})
    assert set(aggregates.series) == {("generic", "t.a", "q")}


def test_retried_arriving_after_the_retrys_success_keeps_name_and_queue():
    """Pool processes flush their event buffers independently, so this order happens for real."""
    aggregates, processor = make()
    processor.feed(envelope(lifecycle("1")))
    processor.feed(envelope({"type": "task-retried", "hostname": "w@h", "uuid": "1", "timestamp": 103.0}))
    assert aggregates.series[("w@h", "t.a", "q")].counts[4] == 1
    assert ("w@h", "unknown", "unknown") not in aggregates.series


def test_the_liveness_clock_stands_still_while_disconnected():
    now = [100.0]
    clock = EventClock(lambda: now[0])
    liveness = Liveness(heartbeat_timeout=5, inspect_interval=5, inspect_timeout=1, purge_after=30, clock=clock)
    aggregates, processor = make()
    processor.clock = clock
    processor.feed(envelope({"type": "worker-heartbeat", "hostname": "w@h", "freq": 2.0, "timestamp": 1.0}))
    worker, heard = aggregates.workers["w@h"], aggregates.last_heard["w@h"]
    now[0] = 104.0
    clock.stop()  # cut off 4 s after the last heartbeat
    now[0] = 1000.0
    assert clock() == 104.0
    assert liveness.is_up(worker, heard, None, clock())
    assert liveness.gone(*aggregates.copy_workers(), {}, clock()) == set()
    clock.start()  # back: silence resumes counting from 4 s
    now[0] = 1000.9
    assert liveness.is_up(worker, heard, None, clock())
    now[0] = 1001.1
    assert not liveness.is_up(worker, heard, None, clock())
    clock.start()
    assert clock() == pytest.approx(105.1)


def test_exception_labels_are_capped_per_series_and_the_rest_counted_as_other():
    aggregates, processor = make(max_exception_labels=3)
    failures = [{"type": "task-failed", "hostname": "w@h", "uuid": "f0", "timestamp": 1.0,
                 "exception": f"<Unlucky object at 0x{i:x}>"} for i in range(10_000)]
    processor.feed_many([envelope(received("f0", 0.0)), *map(envelope, failures), envelope(failures[1])])
    failed = aggregates.series[("w@h", "t.a", "unknown")].failed
    assert len(failed) == 4
    assert failed["other"] == 10_000 - 3
    assert failed["<Unlucky object at 0x1>"] == 2  # a label already kept keeps counting
    assert aggregates.exceptions_folded == 10_000 - 3


@pytest.mark.parametrize("sent_hostname, series", [("generic", 1), (None, 5_000)])
def test_producer_churn_grows_nothing_under_the_generic_hostname(sent_hostname, series):
    aggregates, processor = make(sent_hostname=sent_hostname)
    processor.feed_many([envelope({**sent(f"id-{i}"), "hostname": f"gen{i}@h"}) for i in range(5_000)])
    assert len(aggregates.series) == series
    assert len(aggregates.last_heard) == series
    assert sum(s.counts[0] for s in aggregates.series.values()) == 5_000
    if sent_hostname:
        assert aggregates.series[("generic", "t.a", "q")].counts[0] == 5_000


def test_a_task_revoked_that_overtakes_its_task_sent_is_counted_under_its_name():
    """Revoked on receipt, a task sends only task-revoked (no name); over AMQP it arrives on the
    worker's connection and can come before the producer's task-sent (seen in
    test_amqp_integration)."""
    now = [100.0]
    aggregates = Aggregates(DEFAULT_RUNTIME_BUCKETS, DEFAULT_QUEUE_WAIT_BUCKETS)
    processor = EventProcessor(aggregates, clock=lambda: now[0])
    processor.feed(envelope({"type": "task-revoked", "hostname": "w@h", "uuid": "r", "timestamp": 101.0}))
    assert counts(aggregates) == {}
    now[0] += 0.5
    processor.feed(envelope(sent("r")))
    assert counts(aggregates) == {("generic", "t.a", "q"): [1, 0, 0, 0, 0, 0, 0],
                                  ("w@h", "t.a", "q"): [0, 0, 0, 0, 0, 0, 1]}
    assert len(aggregates.in_flight) == 0 and len(aggregates.orphans) == 0


def test_a_task_revoked_whose_task_sent_never_comes_is_counted_as_unknown_after_the_grace():
    now = [100.0]
    aggregates = Aggregates(DEFAULT_RUNTIME_BUCKETS, DEFAULT_QUEUE_WAIT_BUCKETS)
    processor = EventProcessor(aggregates, clock=lambda: now[0])
    aggregates.single_queues["w@h"] = "only"
    processor.feed(envelope({"type": "task-revoked", "hostname": "w@h", "uuid": "r", "timestamp": 101.0}))
    heartbeat = {"type": "worker-heartbeat", "hostname": "w@h", "timestamp": 102.0, "freq": 2.0}
    now[0] += ORPHAN_GRACE / 2
    processor.feed(envelope(heartbeat))
    assert counts(aggregates) == {}
    now[0] += ORPHAN_GRACE
    processor.feed(envelope(heartbeat))
    assert counts(aggregates) == {("w@h", "unknown", "only"): [0, 0, 0, 0, 0, 0, 1]}
    # A task-revoked of a task in flight (revoked while it waited or ran) is counted at once.
    processor.feed(envelope(sent("known")))
    processor.feed(envelope({"type": "task-revoked", "hostname": "w@h", "uuid": "known", "timestamp": 103.0}))
    assert aggregates.series[("w@h", "t.a", "q")].counts[6] == 1
    assert len(aggregates.orphans) == 0


def test_a_task_received_that_comes_after_the_tasks_end_is_not_left_in_flight():
    """Over AMQP the main process's task-received and the pool process's events travel on
    separate connections: the received can come last (seen in test_amqp_integration)."""
    aggregates, processor = make()
    task_sent, received, started, succeeded = lifecycle("late")
    for event in (task_sent, started, succeeded, received):
        processor.feed(envelope(event))
    assert counts(aggregates)[("w@h", "t.a", "q")] == [0, 1, 1, 1, 0, 0, 0]
    assert len(aggregates.in_flight) == 0
    # A receipt after the end (a redelivery) is a new attempt, in flight again.
    processor.feed(envelope({**received, "timestamp": 110.0}))
    assert list(aggregates.in_flight) == ["late"]


def test_a_retrys_task_sent_that_comes_after_the_tasks_end_is_not_left_in_flight():
    aggregates, processor = make()
    task_sent, received, started, succeeded = lifecycle("again")
    resent = sent("again", ts=103.0, retries=1)
    for event in (task_sent, received, {**started, "timestamp": 104.0}, {**succeeded, "timestamp": 104.5},
                  resent):
        processor.feed(envelope(event))
    assert counts(aggregates)[("generic", "t.a", "q")][0] == 2
    assert len(aggregates.in_flight) == 0
