"""``python -m demo``, the README's first command, run for real without a terminal.

It must tell the whole story in its plain output (alert fired, pool grew, drained, resolved,
pool shrank back), then print where to look: with --exit-when-done it ends there with status 0;
by default everything stays up, answering at those addresses, until Ctrl-C. Whatever way it
ends (Ctrl-C, SIGHUP, even SIGKILL) nothing it started is left running, and it refuses to start
on a port someone else holds, naming who.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from celery import Celery

from demo.http_client import answers
from demo.polling import GaveUp, Timeout
from tests.support.polling import wait_for
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WORKER = "demo@autopilot"
FREE_PORTS = ["--exporter-port", "0", "--actuator-port", "0", "--prometheus-port", "0", "--alertmanager-port", "0"]
_URL = re.compile(r"(http://127\.0\.0\.1:\d+)")
# What the plain output says when the story is over and where to look has been printed.
STAYS_UP = "everything stays up to explore; Ctrl-C stops it all"


class Demo:
    """The demo as a subprocess whose output lines are collected as they come."""

    def __init__(self, broker_url: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "demo", "--broker-url", broker_url, *args],
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

    def services_answer(self) -> bool:
        urls = self.urls()
        return len(urls) == 4 and all(answers(f"{url}/-/ready") or answers(f"{url}/healthz") for url in urls)

    def wait_for_output(self, text: str, timeout: float) -> None:
        """Until a line holds ``text``; fails with the output so far if the demo exits first."""
        def printed() -> bool:
            if self.proc.poll() is not None:
                raise GaveUp(f"the demo exited with {self.proc.returncode} before printing {text!r}:\n{self.output}")
            return any(text in line for line in self.lines)
        try:
            wait_for(printed, timeout=timeout, interval=0.2, what=repr(text))
        except Timeout as exc:
            raise AssertionError(f"{exc}; output so far:\n{self.output}") from None

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


@contextmanager
def demo(broker_url: str, *args: str) -> Iterator[Demo]:
    running = Demo(broker_url, *args)
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()


def the_story(running: Demo) -> list[str]:
    """The milestones, numbers replaced by N; drained and resolved may come in either order."""
    story = [re.sub(r"[\d.]+", "N", line.split("==> ", 1)[1]) for line in running.lines if "==> " in line]
    return story[:2] + sorted(story[2:4]) + story[4:]


STORY = [
    "CeleryQueueBacklog fired after N s",
    "pool grew from N to N processes N s after the burst",
    "CeleryQueueBacklog resolved after N s",
    "backlog drained after N s",
    "pool shrank back to N processes after N s (peak N)",
]


def assert_healed_by_the_shipped_rules(output: str, concurrency: int) -> None:
    """Grown by track-backlog, shrunk by shrink-overprovisioned-pool, nothing done on resolve."""
    assert f"==> pool grew from {concurrency} to" in output, output
    assert f"==> pool shrank back to {concurrency} processes" in output, output
    assert re.search(r"action: CeleryQueueBacklog firing -> rule track-backlog: pool_target size=\d+ .*"
                     rf"-> sent \[{WORKER}: ok\]", output), output
    assert re.search(r"action: CeleryPoolOverprovisioned firing -> rule shrink-overprovisioned-pool: "
                     rf"pool_shrink n=\d+ .*-> sent \[{WORKER}: ok\]", output), output
    assert "action: CeleryQueueBacklog resolved -> no rule matched" in output, output
    assert re.search(rf"self-healed: pool {concurrency} -> \d+ -> {concurrency}", output), output


def assert_nothing_left(broker_url: str, urls: set[str]) -> None:
    """No service answers at the demo's addresses and its worker answers no ping (polled: a
    process killed with its parent takes a moment to go)."""
    assert len(urls) == 4, f"expected the four service URLs, got {urls}"
    app = Celery("demo-test", broker=broker_url, set_as_current=False)
    try:
        def gone() -> bool:
            services = [url for url in urls if answers(f"{url}/-/ready") or answers(f"{url}/healthz")]
            worker = app.control.ping(destination=[WORKER], timeout=0.5)
            return not services and not worker
        wait_for(gone, timeout=20, interval=0.5, what="every process the demo started to be gone")
    finally:
        app.close()


def test_with_exit_when_done_it_tells_the_whole_story_and_ends(broker_url, tmp_path):
    with demo(broker_url, "--workdir", str(tmp_path), *FREE_PORTS, "--plain", "--exit-when-done",
              "--timeout", "90") as running:
        code = running.wait(timeout=150)
        output = running.output
        assert code == 0, output
        assert the_story(running) == STORY, output
        assert_healed_by_the_shipped_rules(output, concurrency=2)
        lines = running.lines
        assert lines.index("open:") > max(i for i, line in enumerate(lines) if "self-healed" in line)
        assert lines[-1] == "stopping everything", output
        assert_nothing_left(broker_url, running.urls())


def test_by_default_it_stays_up_after_the_story_until_ctrl_c(broker_url):
    """Also: a pool of 3 heals back to 3, and a working folder of its own is removed."""
    with demo(broker_url, *FREE_PORTS, "--plain", "--concurrency", "3",
              "--timeout", "90") as running:
        running.wait_for_output(STAYS_UP, timeout=150)
        output = running.output
        assert the_story(running) == STORY, output
        assert_healed_by_the_shipped_rules(output, concurrency=3)
        assert running.services_answer(), f"the printed URLs do not all answer: {running.urls()}"
        (workdir,) = re.findall(r"logs and data in (\S+)\)", output)
        assert Path(workdir).is_dir()

        running.proc.send_signal(signal.SIGINT)
        assert running.wait(timeout=60) == 0, running.output
        assert running.lines[-1] == "stopping everything", running.output
        assert_nothing_left(broker_url, running.urls())
        assert not Path(workdir).exists(), "the demo's own working folder was left behind"


@pytest.mark.parametrize("ending, code", [(signal.SIGHUP, 128 + signal.SIGHUP), (signal.SIGKILL, -signal.SIGKILL)],
                         ids=["SIGHUP", "SIGKILL"])
def test_however_it_ends_nothing_it_started_keeps_running(broker_url, tmp_path, ending, code):
    """SIGHUP unwinds like Ctrl-C; after SIGKILL no cleanup runs, and its children die with it."""
    ports = {service: free_port() for service in ("exporter", "actuator", "prometheus", "alertmanager")}
    flags = [token for service, port in ports.items() for token in (f"--{service}-port", str(port))]
    with demo(broker_url, "--workdir", str(tmp_path), *flags, "--plain") as running:
        running.wait_for_output("sending a burst", timeout=60)
        running.proc.send_signal(ending)
        assert running.wait(timeout=60) == code, running.output
        assert_nothing_left(broker_url, {f"http://127.0.0.1:{port}" for port in ports.values()})


def test_a_port_someone_holds_stops_the_demo_before_it_starts_anything(broker_url, tmp_path):
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        ports = [*FREE_PORTS]
        ports[ports.index("--prometheus-port") + 1] = str(port)
        with demo(broker_url, "--workdir", str(tmp_path), *ports, "--plain") as running:
            assert running.wait(timeout=30) == 1, running.output
    output = running.output
    assert f"error: port {port} on 127.0.0.1, where the Prometheus should listen, is taken by pid " in output
    assert f"is taken by pid {os.getpid()} (" in output, "the holder (this test) is named"
    assert "--prometheus-port" in output
    assert "starting worker" not in output and not (tmp_path / "logs").exists()


def test_a_worker_already_named_like_the_demos_stops_it(broker_url, worker_factory, tmp_path):
    worker_factory(WORKER, queues=["elsewhere"], concurrency=1)
    with demo(broker_url, "--workdir", str(tmp_path), *FREE_PORTS, "--plain") as running:
        assert running.wait(timeout=60) == 1, running.output
    assert f"error: a worker named {WORKER} already answers on {broker_url}" in running.output
