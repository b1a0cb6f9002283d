"""Highest event rate a consumer sustains on Redis with zero loss and no growing lag.

A trial publishes a fixed rate for a fixed time to a private redis-server (default pub/sub
output-buffer limit, as in production: a subscriber 32 MB behind is disconnected), then waits
for the consumer to drain. The trial passes when every event arrived and the consumer caught up
within a second of the publisher stopping — a consumer that is slower than the rate builds a
backlog in Redis' output buffer (sampled as ``omem`` every 250 ms) that only grows.

Consumers run as subprocesses; their CPU time (user + system) over the trial gives the CPU cost
per event, the figure that compares across machines of different speed.
"""
from __future__ import annotations

import bisect
import itertools
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

from bench.loadgen import LoadShape, build, publish, resp_publish
from tests.support.polling import wait_for
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]


class Consumer(ABC):
    """A consumer under test: how to start it and how many events/messages it has taken."""

    name: str
    counts_events = True

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix=f"bench-{self.name}-", suffix=".log")[1])

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def taken(self) -> int:
        """Events taken so far (messages, for a consumer that does not decode)."""

    def start(self, server: RedisServer) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        client = server.client()

        def subscribed() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            return client.execute_command("PUBSUB", "NUMPAT") >= 1 and self.ready()
        wait_for(subscribed, timeout=30, what=f"{self.name} to subscribe")

    def ready(self) -> bool:
        return True

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ProgressFileConsumer(Consumer):
    """A baseline from bench/consumers.py, reporting through a progress file."""

    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self.progress = Path(tempfile.mkstemp(prefix=f"bench-{self.name}-", suffix=".progress")[1])
        self.progress.write_text("")

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.consumers", self.name, "--redis-url", self.redis_url,
                "--progress", str(self.progress)]

    def _read(self) -> tuple[int, int]:
        text = self.progress.read_text().split()
        return (int(text[0]), int(text[1])) if len(text) == 2 else (0, 0)

    def ready(self) -> bool:
        return bool(self.progress.read_text())

    def taken(self) -> int:
        events, messages = self._read()
        return messages if not self.counts_events else events


class RedisPySubscriber(ProgressFileConsumer):
    name = "redis-py"
    counts_events = False


class CeleryState(ProgressFileConsumer):
    name = "celery-state"


class Exporter(Consumer):
    """The exporter itself, counted through its own ``celery_exporter_events_received_total``."""

    name = "exporter"
    EVENTS = re.compile(rb"^celery_exporter_events_received_total\{[^}]*\} ([0-9.e+]+)$", re.M)

    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self.port = free_port()

    def command(self) -> list[str]:
        # Inspection and queue polling stay on (as in production) at their default intervals.
        return [sys.executable, "-m", "exporter", "--broker-url", self.redis_url,
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "WARNING"]

    def ready(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
            return response.status == 200

    def taken(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
            body = response.read()
        return int(sum(float(v) for v in self.EVENTS.findall(body)))


CONSUMERS: dict[str, type[Consumer]] = {c.name: c for c in (Exporter, CeleryState, RedisPySubscriber)}


# A trial counts only if the load really arrived at (nearly) the rate asked for.
PUBLISHER_SHORTFALL = 0.97


@dataclass
class Trial:
    consumer: str
    rate: float
    published_events: int
    published_messages: int
    publish_rate: float
    taken: int
    expected: int
    drain_seconds: float
    max_omem_bytes: int
    cpu_seconds: float

    @property
    def lost(self) -> int:
        return self.expected - self.taken

    @property
    def publisher_bound(self) -> bool:
        """The publisher (and Redis) fell short of the rate: the trial says nothing of the consumer."""
        return self.publish_rate < PUBLISHER_SHORTFALL * self.rate

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.drain_seconds <= 1.0 and not self.publisher_bound

    @property
    def result(self) -> str:
        if self.lost or self.drain_seconds > 1.0:
            return "FAIL"
        return "publisher-bound" if self.publisher_bound else "pass"

    @property
    def cpu_us_per_event(self) -> float:
        return 1e6 * self.cpu_seconds / self.published_events


class OutputBufferSampler:
    """Largest pub/sub output buffer (``omem``) Redis held for any subscriber during a trial."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.max_omem = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OutputBufferSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            for client in self.client.client_list(_type="pubsub"):
                self.max_omem = max(self.max_omem, int(client.get("omem", 0)))


class Load:
    """One pre-encoded message stream; a trial at a lower rate publishes a prefix of it."""

    def __init__(self, shape: LoadShape, events: int, rate: float) -> None:
        self.shape = shape
        messages, _ = build(shape, events, rate)
        self.commands = [resp_publish(m.channel, m.data) for m in messages]
        self.events = [m.events for m in messages]
        self.cumulative = list(itertools.accumulate(self.events))

    def prefix(self, n_events: int) -> tuple[list[bytes], list[int], int]:
        end = min(bisect.bisect_left(self.cumulative, n_events) + 1, len(self.commands))
        return self.commands[:end], self.events[:end], self.cumulative[end - 1]


def run_trial(consumer_name: str, rate: float, duration: float, load: Load) -> Trial:
    server = RedisServer()
    server.start()
    consumer = CONSUMERS[consumer_name](server.url(load.shape.db))
    try:
        commands, events, n_events = load.prefix(int(rate * duration))
        expected = n_events if consumer.counts_events else len(commands)
        consumer.start(server)
        baseline = consumer.taken()
        cpu_before = consumer.cpu_seconds()
        with OutputBufferSampler(server.client()) as sampler:
            report = publish(server.url(load.shape.db), commands, events, rate)
            published_at = time.perf_counter()
            deadline = published_at + 15
            last = consumer.taken() - baseline
            while last < expected and time.perf_counter() < deadline:
                time.sleep(0.02)
                last = consumer.taken() - baseline
            drain = time.perf_counter() - published_at
        return Trial(consumer_name, rate, report.events, report.messages, report.rate,
                     last, expected, drain, sampler.max_omem, consumer.cpu_seconds() - cpu_before)
    finally:
        consumer.stop()
        server.close()


def ladder(consumer_name: str, rates: list[float], duration: float, load: Load,
           report: Callable[[Trial], None]) -> list[Trial]:
    """Trials at increasing rates until one does not pass; the last pass is the sustained rate.

    A publisher-bound trial ends the ladder too: the machine cannot load the consumer harder."""
    trials = []
    for rate in rates:
        trial = run_trial(consumer_name, rate, duration, load)
        trials.append(trial)
        report(trial)
        if not trial.passed:
            break
    return trials
