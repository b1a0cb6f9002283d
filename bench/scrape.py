"""``/metrics`` latency of a real exporter process holding 100 workers × 50 task names.

The exporter consumes a generated load over Redis (every worker runs every task name, so all
5,000 (worker, name) series exist, each with counters and both histograms), then the harness
times sequential ``GET /metrics`` requests, the way Prometheus scrapes.
"""
from __future__ import annotations

import statistics
import time
import urllib.request
from dataclasses import dataclass

from bench.loadgen import LoadShape, build, publish, resp_publish
from bench.throughput import Exporter
from tests.support.polling import wait_for
from tests.support.redis_server import RedisServer


@dataclass
class ScrapeReport:
    series_pairs: int
    samples: int
    body_bytes: int
    p50_ms: float
    p90_ms: float


def _get(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return time.perf_counter() - start, body


def measure(workers: int = 100, names: int = 50, requests: int = 40) -> ScrapeReport:
    shape = LoadShape(workers=workers, task_names=names, queues=1)
    messages, n_events = build(shape, workers * names * 4 * 2, 20_000)
    server = RedisServer()
    server.start()
    exporter = Exporter(server.url(shape.db))
    try:
        exporter.start(server)
        publish(server.url(shape.db), [resp_publish(m.channel, m.data) for m in messages],
                [m.events for m in messages], 20_000)
        wait_for(lambda: exporter.taken() >= n_events, timeout=60, what="exporter to take the load")
        url = f"http://127.0.0.1:{exporter.port}/metrics"
        _get(url)
        scrapes = [_get(url) for _ in range(requests)]
        body = scrapes[-1][1]
        times = sorted(t for t, _ in scrapes)
        return ScrapeReport(
            series_pairs=workers * names,
            samples=sum(1 for line in body.splitlines() if line and not line.startswith(b"#")),
            body_bytes=len(body),
            p50_ms=1000 * statistics.median(times),
            p90_ms=1000 * times[int(0.9 * (len(times) - 1))],
        )
    finally:
        exporter.stop()
        server.close()
