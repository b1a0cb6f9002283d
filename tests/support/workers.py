"""Real Celery worker subprocesses (prefork pool by default) running demo.tasks."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery

from .polling import wait_for

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    name: str
    broker_url: str
    proc: subprocess.Popen
    log: Path
    queues: list[str] = field(default_factory=list)

    def control_app(self) -> Celery:
        return Celery("tests", broker=self.broker_url)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group, so a SIGKILL leaves no pool children behind."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(
    broker_url: str,
    name: str,
    *,
    queues: list[str] | None = None,
    concurrency: int = 2,
    pool: str = "prefork",
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    ready_timeout: float = 30.0,
    events: bool = True,
) -> Worker:
    """Start ``celery worker`` and return once it answers a ping.

    ``events=False`` starts it without events (no ``-E``, ``DEMO_WORKER_EVENTS=0``).
    """
    queues = queues or ["celery"]
    log = Path(tempfile.mkstemp(prefix=f"worker-{name.replace('@', '_')}-", suffix=".log")[1])
    cmd = [
        sys.executable, "-m", "celery", "-A", "demo.tasks", "worker",
        "-P", pool, "-c", str(concurrency), "-n", name, "-Q", ",".join(queues),
        "--without-mingle", "--without-gossip", "--loglevel", "INFO", *(["-E"] if events else []),
        *(extra_args or []),
    ]
    proc_env = {**os.environ, "CELERY_BROKER_URL": broker_url, "PYTHONPATH": str(ROOT),
                "DEMO_WORKER_EVENTS": "1" if events else "0"}
    proc_env.update(env or {})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=proc_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(name=name, broker_url=broker_url, proc=proc, log=log, queues=queues)
    app = worker.control_app()
    try:
        def answers() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"worker {name} exited with {proc.returncode}:\n{worker.log_text()}")
            return bool(app.control.ping(destination=[name], timeout=0.5))
        wait_for(answers, timeout=ready_timeout, interval=0.2, what=f"worker {name} to answer ping")
    except BaseException:
        worker.kill()
        raise
    finally:
        app.close()
    return worker
