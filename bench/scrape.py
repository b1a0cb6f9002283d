"""``/metrics`` latency of a real exporter process holding 100 workers × 50 task names.

The exporter consumes a generated load over Redis (every worker runs every task name, so all
5,000 (worker, name) series exist, each with counters and both histograms), then the harness
times ``GET /metrics`` requests the way Prometheus scrapes, in two conditions:

- quiet: nothing happened since the previous scrape (the renderer reuses every histogram's text);
- busy: before each scrape, one more task ran for every (worker, name) pair, so every series
  changed — what a 15 s scrape interval sees on a busy cluster. Each busy scrape's own body is
  checked to hold that round's events; a scrape that came before the round had landed is not
  counted.

The baseline, in process on the same series: prometheus_client's ``generate_latest`` over a
registry holding the same counters and histograms — how celery-exporter and most hand-written
exporters produce their text — against this exporter's snapshot + render.
"""
from __future__ import annotations

import re
import statistics
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bench.loadgen import EventStream, LoadShape, build, publish, resp_publish
from bench.throughput import Exporter
from exporter.aggregates import STATES, Aggregates
from exporter.liveness import Liveness
from exporter.poll_results import PollResults
from exporter.processor import EventProcessor
from exporter.render import Renderer
from exporter.settings import DEFAULT_QUEUE_WAIT_BUCKETS, DEFAULT_RUNTIME_BUCKETS
from exporter.snapshot import take_snapshot
from tests.support.polling import wait_for
from tests.support.redis_server import RedisServer

_RECEIVED = re.compile(rb"^celery_exporter_events_received_total\{[^}]*\} ([0-9.e+]+)$", re.M)
# Busy rounds publish at this rate; then the exporter gets this long to apply them (about 0.2 s
# of its work at the rates it sustains) before the scrape, whose body says whether it did.
ROUND_RATE = 100_000
SETTLE_SECONDS = 1.0


@dataclass
class Latency:
    samples: int
    p50_ms: float
    p90_ms: float


@dataclass
class RenderCost:
    """Milliseconds to produce the whole text in process (median of several)."""
    exporter_busy_ms: float
    exporter_quiet_ms: float
    prometheus_client_ms: float


@dataclass
class ScrapeReport:
    series_pairs: int
    samples: int
    body_bytes: int
    quiet: Latency
    busy: Latency
    busy_discarded: int


def _get(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return time.perf_counter() - start, body


def _latency(times: list[float]) -> Latency:
    times = sorted(times)
    return Latency(len(times), 1000 * statistics.median(times), 1000 * times[int(0.9 * (len(times) - 1))])


def _events_in(body: bytes) -> int:
    return int(sum(float(v) for v in _RECEIVED.findall(body)))


def measure(workers: int = 100, names: int = 50, requests: int = 40, busy_rounds: int = 20) -> ScrapeReport:
    shape = LoadShape(workers=workers, task_names=names, queues=1)
    stream = EventStream(shape, rate=20_000)
    pairs = workers * names
    server = RedisServer()
    server.start()
    exporter = Exporter(server.url(shape.db))
    try:
        exporter.start(server)
        url = f"http://127.0.0.1:{exporter.port}/metrics"

        def run_round(n_tasks: int, rate: float) -> int:
            messages = list(stream.messages(n_tasks))
            publish(server.url(shape.db), [resp_publish(m.channel, m.data) for m in messages],
                    [m.events for m in messages], rate)
            return sum(m.events for m in messages)

        expected = exporter.taken() + run_round(2 * pairs, 20_000)
        wait_for(lambda: exporter.taken() >= expected, timeout=60, what="exporter to take the load")
        _get(url)
        quiet = [_get(url) for _ in range(requests)]
        body = quiet[-1][1]

        busy, discarded = [], 0
        for _ in range(busy_rounds):
            expected += run_round(pairs, ROUND_RATE)
            time.sleep(SETTLE_SECONDS)
            elapsed, round_body = _get(url)
            if _events_in(round_body) == expected:
                busy.append(elapsed)
            else:
                discarded += 1
                wait_for(lambda: exporter.taken() >= expected, timeout=60, what="exporter to take a round")
        return ScrapeReport(
            series_pairs=pairs,
            samples=sum(1 for line in body.splitlines() if line and not line.startswith(b"#")),
            body_bytes=len(body),
            quiet=_latency([t for t, _ in quiet]),
            busy=_latency(busy) if busy else Latency(0, float("nan"), float("nan")),
            busy_discarded=discarded,
        )
    finally:
        exporter.stop()
        server.close()


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def render_cost(workers: int = 100, names: int = 50, repeat: int = 7) -> RenderCost:
    """The same series through this exporter's renderer and through prometheus_client."""
    shape = LoadShape(workers=workers, task_names=names, queues=1)
    messages, _ = build(shape, workers * names * 4 * 2, 20_000)
    aggregates = Aggregates(DEFAULT_RUNTIME_BUCKETS, DEFAULT_QUEUE_WAIT_BUCKETS)
    processor = EventProcessor(aggregates)
    processor.feed_many([m.data.encode() for m in messages])
    polls, liveness = PollResults(), Liveness(None, 5.0, 1.0, 1800.0)

    def exporter_text(renderer: Renderer) -> bytes:
        return b"".join(renderer.render(take_snapshot(aggregates, processor, polls, liveness, ())))

    warm = Renderer()
    exporter_text(warm)
    busy = _median_ms(lambda: exporter_text(Renderer()), repeat)  # no histogram text to reuse
    quiet = _median_ms(lambda: exporter_text(warm), repeat)

    registry = CollectorRegistry()
    labels = ("name", "hostname", "queue_name")
    counters = [Counter(f"celery_task_{state}", "", labels, registry=registry) for state in STATES]
    failed = Counter("celery_task_failed", "", (*labels, "exception"), registry=registry)
    runtime = Histogram("celery_task_runtime", "", labels, buckets=DEFAULT_RUNTIME_BUCKETS, registry=registry)
    wait = Histogram("celery_task_queue_wait_time", "", labels, buckets=DEFAULT_QUEUE_WAIT_BUCKETS,
                     registry=registry)
    for (hostname, name, queue), series in aggregates.series.items():
        values = (name, hostname, queue)
        for counter, count in zip(counters, series.counts):
            counter.labels(*values).inc(count)
        for exception, count in series.failed.items():
            failed.labels(*values, exception).inc(count)
        for histogram, bounds, buckets in ((runtime, DEFAULT_RUNTIME_BUCKETS, series.runtime),
                                           (wait, DEFAULT_QUEUE_WAIT_BUCKETS, series.wait)):
            child = histogram.labels(*values)
            for bound, count in zip((*bounds, bounds[-1] * 2), buckets):
                for _ in range(count):
                    child.observe(bound)
    baseline = _median_ms(lambda: generate_latest(registry), max(3, repeat // 2))
    return RenderCost(busy, quiet, baseline)
