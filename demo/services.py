"""The project's own processes of the local stack: a demo worker, the exporter, the actuator.

Each runs as a real subprocess from this checkout (``python -m celery|exporter|actuator``),
writes its output to a log file and counts as started once it answers: the worker a ping, the
services their ``/healthz`` on a port the process itself listens on (another program answering
there does not count). A process that exits while starting fails at once with its log.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery

from .http_client import answers
from .listeners import listening_ports
from .polling import GaveUp, wait_for
from .processes import die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[1]


class NameTaken(RuntimeError):
    """A Celery node name the demo needs is used by a running worker."""


@dataclass
class Service:
    """A subprocess in a session of its own, so that stopping it also stops its children
    (a prefork worker's pool processes); it gets SIGTERM if the process that started it dies."""

    name: str
    command: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self, ready: Callable[[], bool], *, timeout: float = 30.0) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent, env={**os.environ, "PYTHONPATH": str(ROOT), **self.env})

        def started() -> bool:
            self.check_running("while starting")
            return ready()

        try:
            wait_for(started, timeout=timeout, interval=0.1, what=f"{self.name} to start")
            self.check_running("right after it answered")
        except BaseException:
            self.stop()
            raise

    def check_running(self, when: str) -> None:
        """GaveUp, with the end of its log, if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise GaveUp(f"{self.name} exited with {self.proc.returncode} {when}; "
                         f"its log ({self.log}):\n{self.log_text()[-3000:]}")

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM to the whole process group, SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class HttpService(Service):
    """A service with an HTTP port: the exporter or the actuator."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_serving(self, *, timeout: float = 30.0) -> HttpService:
        self.start(self._serving, timeout=timeout)
        return self

    def _serving(self) -> bool:
        return (answers(f"{self.url}/healthz") and self.proc is not None
                and self.port in listening_ports(self.proc.pid))


def start_worker(broker_url: str, logs: Path, *, name: str, queues: Sequence[str] = ("celery",),
                 concurrency: int = 2, timeout: float = 30.0) -> Service:
    """A prefork worker running demo.tasks with events on; started once it answers a ping.

    Refused if a worker of that name already answers on the broker (an earlier demo still
    running): its ping would pass for ours, and commands for the name would reach both.
    """
    worker = Service(
        name=f"worker {name}", log=logs / f"worker-{name.replace('@', '_')}.log",
        command=[sys.executable, "-m", "celery", "-A", "demo.tasks", "worker", "-P", "prefork",
                 "-c", str(concurrency), "-n", name, "-Q", ",".join(queues), "-E",
                 "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
        env={"CELERY_BROKER_URL": broker_url})
    app = Celery("demo-ping", broker=broker_url, set_as_current=False)

    def answering() -> list[str]:
        return [node for reply in app.control.ping(destination=[name], timeout=0.5) for node in reply]
    try:
        if answering():
            raise NameTaken(f"a worker named {name} already answers on {broker_url} (another demo still "
                            "running?): stop it first")
        worker.start(lambda: name in answering(), timeout=timeout)
    finally:
        app.close()
    return worker


def start_exporter(broker_url: str, logs: Path, *, queues: Sequence[str], port: int | None = None) -> HttpService:
    """The exporter, polling queues and workers every second (the defaults are 5 s)."""
    port = port or free_port()
    return HttpService(
        name="exporter", log=logs / "exporter.log", port=port,
        command=[sys.executable, "-m", "exporter", "--broker-url", broker_url, "--host", "127.0.0.1",
                 "--port", str(port), "--queues", ",".join(queues), "--queue-interval", "0.5",
                 "--inspect-interval", "1", "--discovery-interval", "5"],
    ).start_serving()


def start_actuator(broker_url: str, logs: Path, *, rules: Path, token_file: Path, audit_db: Path,
                   port: int | None = None) -> HttpService:
    """The actuator with ``rules``, accepting the bearer token Alertmanager sends."""
    port = port or free_port()
    return HttpService(
        name="actuator", log=logs / "actuator.log", port=port,
        command=[sys.executable, "-m", "actuator", "serve", "--rules", str(rules), "--broker-url", broker_url,
                 "--host", "127.0.0.1", "--port", str(port), "--bearer-token-file", str(token_file),
                 "--audit-db", str(audit_db), "--discovery-interval", "5"],
    ).start_serving()
