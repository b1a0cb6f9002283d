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
    # demo.tasks takes it from DEMO_CONTROL_EXCHANGE; remote control must use the same.
    control_exchange: str = "celery"

    def control_app(self) -> Celery:
        app = Celery("tests", broker=self.broker_url)
        app.conf.control_exchange = self.control_exchange
        return app

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
    ready_timeout: float = 30.0,
    **options,
) -> Worker:
    """Start ``celery worker`` and return once it answers a ping."""
    worker = launch_worker(broker_url, name, **options)
    wait_until_ready([worker], timeout=ready_timeout)
    return worker


def launch_worker(
    broker_url: str,
    name: str,
    *,
    queues: list[str] | None = None,
    concurrency: int = 2,
    pool: str = "prefork",
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    events: bool = True,
) -> Worker:
    """Start ``celery worker`` without waiting for it; see :func:`wait_until_ready`.

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
    return Worker(name=name, broker_url=broker_url, proc=proc, log=log, queues=queues,
                  control_exchange=proc_env.get("DEMO_CONTROL_EXCHANGE", "celery"))


def wait_until_ready(workers: list[Worker], *, timeout: float = 30.0) -> None:
    """Wait until every worker answers a ping (they start in parallel); kill them all on failure."""
    if not workers:
        return
    app = workers[0].control_app()
    try:
        def all_answer() -> bool:
            for worker in workers:
                if worker.proc.poll() is not None:
                    raise AssertionError(
                        f"worker {worker.name} exited with {worker.proc.returncode}:\n{worker.log_text()}")
            names = [worker.name for worker in workers]
            replies = app.control.ping(destination=names, timeout=0.5)
            return {name for reply in replies for name in reply} >= set(names)
        wait_for(all_answer, timeout=timeout, interval=0.2,
                 what=f"workers {', '.join(w.name for w in workers)} to answer ping")
    except BaseException:
        for worker in workers:
            worker.kill()
        raise
    finally:
        app.close()
