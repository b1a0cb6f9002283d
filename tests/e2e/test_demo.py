"""``python -m demo``, the README's first command, run for real without a terminal.

It must tell the whole story in its plain output (alert fired, pool grew, drained, resolved,
pool shrank back), end by itself with status 0, and leave nothing running, also when
interrupted with Ctrl-C.
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from celery import Celery

from demo.http_client import answers
from tests.support.polling import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WORKER = "demo@autopilot"
FREE_PORTS = ["--exporter-port", "0", "--actuator-port", "0", "--prometheus-port", "0", "--alertmanager-port", "0"]
_URL = re.compile(r"(http://127\.0\.0\.1:\d+)")


class Demo:
    """The demo as a subprocess whose output lines are collected as they come."""

    def __init__(self, broker_url: str, workdir: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "demo", "--broker-url", broker_url, "--workdir", str(workdir), *FREE_PORTS, *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def urls(self) -> set[str]:
        return {match.group(1) for line in self.lines for match in _URL.finditer(line)}

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


@contextmanager
def demo(broker_url: str, workdir: Path, *args: str) -> Iterator[Demo]:
    running = Demo(broker_url, workdir, *args)
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()


def assert_nothing_left(broker_url: str, urls: set[str]) -> None:
    assert len(urls) == 4, f"expected the four service URLs, got {urls}"
    for url in urls:
        assert not answers(f"{url}/-/ready") and not answers(f"{url}/healthz"), f"{url} still answers"
    app = Celery("demo-test", broker=broker_url, set_as_current=False)
    try:
        assert app.control.ping(destination=[WORKER], timeout=1) == [], "the demo worker still answers"
    finally:
        app.close()


def test_the_demo_tells_the_whole_story_and_ends_by_itself(broker_url, tmp_path):
    with demo(broker_url, tmp_path, "--plain", "--timeout", "90") as running:
        code = running.wait(timeout=150)
        output = running.output
        assert code == 0, output
        story = [re.sub(r"[\d.]+", "N", line.split("==> ", 1)[1]) for line in running.lines if "==> " in line]
        # The alert resolves below the threshold, so before or after the last messages ran.
        assert story[:2] + sorted(story[2:4]) + story[4:] == [
            "CeleryQueueBacklog fired after N s",
            "pool grew from N to N processes N s after the burst",
            "CeleryQueueBacklog resolved after N s",
            "backlog drained after N s",
            "pool shrank back to N processes after N s (peak N)",
        ], output
        assert "==> pool grew from 2 to" in output and "==> pool shrank back to 2 processes" in output, output
        assert re.search(r"action: CeleryQueueBacklog firing -> rule track-backlog: pool_target size=\d+ "
                         rf"-> sent \[{WORKER}: ok\]", output), output
        assert "action: CeleryQueueBacklog resolved -> rule settle-after-backlog: pool_target size=2" in output
        assert re.search(r"self-healed: pool 2 -> \d+ -> 2", output), output
        assert_nothing_left(broker_url, running.urls())


def test_ctrl_c_stops_everything_the_demo_started(broker_url, tmp_path):
    with demo(broker_url, tmp_path, "--plain", "--keep-running") as running:
        wait_for(lambda: len(running.urls()) == 4 and all(answers(f"{url}/-/ready") or answers(f"{url}/healthz")
                                                          for url in running.urls()),
                 timeout=60, interval=0.2, what=f"the demo to start its services; output so far:\n{running.output}")
        running.proc.send_signal(signal.SIGINT)
        assert running.wait(timeout=60) == 130, running.output
        assert "interrupted; everything the demo started is stopped" in running.output
        assert_nothing_left(broker_url, running.urls())
