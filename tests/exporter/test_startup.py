"""No broker at start-up: the exporter serves, backs off exponentially, never exits, and connects
once the broker appears; meanwhile scrapes answer at once. Logged as JSON lines here."""
from __future__ import annotations

import json
import time

from tests.support.exporter import http_get, start_exporter
from tests.support.polling import wait_for
from tests.support.redis_server import RedisServer

MAX_DELAY = 0.8


def retry_delays(log_text: str) -> list[float]:
    """The delays of the events consumer's reconnect attempts, from its JSON log lines."""
    entries = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    return [float(e["message"].rsplit("retrying in ", 1)[1].rstrip("s")) for e in entries
            if e["logger"] == "exporter.reconnect" and "retrying in" in e["message"]]


def test_no_broker_at_start_up_backs_off_never_exits_and_connects_when_it_comes():
    server = RedisServer()  # its port is chosen, nothing listens there yet
    exporter = start_exporter(server.url(0), "--reconnect-max-delay", str(MAX_DELAY), "--log-format", "json",
                              wait_connected=False)
    try:
        delays = wait_for(lambda: d if len(d := retry_delays(exporter.log_text())) >= 5 else None,
                          timeout=15, what="five reconnect attempts")
        assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 0.8]
        for line in exporter.log_text().splitlines():
            if line.strip():
                entry = json.loads(line)  # every line is one JSON object
                assert {"time", "level", "logger", "message"} <= entry.keys()

        # A scrape never waits on the broker, even while every source fails to reach it.
        latencies = []
        for _ in range(20):
            started = time.monotonic()
            status, text = http_get(exporter.url + "/metrics")
            latencies.append(time.monotonic() - started)
            assert status == 200 and "celery_exporter_broker_connected 0" in text
        assert max(latencies) < 0.25, f"scrapes took up to {max(latencies):.3f}s without a broker"
        assert http_get(exporter.url + "/healthz")[0] == 503
        assert exporter.proc.poll() is None, "the exporter gave up"

        server.start()
        exporter.wait_metric("celery_exporter_broker_connected", 1, timeout=MAX_DELAY + 5)
        exporter.wait_metric("celery_queue_length", 0, queue_name="celery")
        assert http_get(exporter.url + "/healthz")[0] == 200
    finally:
        exporter.stop()
        server.close()
