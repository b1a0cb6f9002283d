"""The live self-healing demo, start to end.

A worker with a small pool, the whole loop around it (demo.stack), then a burst of tasks: the
backlog alert fires, Alertmanager posts it, the actuator grows the pool, the backlog drains, the
alert resolves and the pool shrinks back. The demo ends once it has, or after ``timeout``.
Every process it started is stopped on the way out, whatever the way out is.
"""
from __future__ import annotations

import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .display import Display
from .observe import observe
from .polling import wait_for
from .progress import Progress
from .services import start_worker
from .stack import ACTUATOR_RULES, REMEDIATION_FOR, Autopilot, StackSettings, autopilot
from .traffic import purge, send_burst

# How often the demo looks: the loop's own pace, well under Prometheus' 1 s scrape.
LOOK_EVERY = 0.5


@dataclass(frozen=True)
class DemoSettings:
    broker_url: str
    queue: str = "autopilot-demo"
    worker: str = "demo@autopilot"
    concurrency: int = 2
    tasks: int = 1000
    task_seconds: float = 0.05
    backlog_threshold: int = 100
    timeout: float = 180.0
    keep_running: bool = False
    rules: Path = ACTUATOR_RULES
    exporter_port: int | None = 9808
    actuator_port: int | None = 9809
    prometheus_port: int | None = 9090
    alertmanager_port: int | None = 9093
    workdir: Path | None = None


def _stack_settings(settings: DemoSettings, workdir: Path) -> StackSettings:
    """Demo-sized alerts: the backlog threshold given, remediation alerts after 1 s (the shipped
    rules wait minutes). The backlog resolves below the threshold, while tasks still run: if the
    pool is too busy to shrink then, CeleryPoolOverprovisioned shrinks it once it is idle."""
    return StackSettings(
        broker_url=settings.broker_url, workdir=workdir, queues=(settings.queue,), rules=settings.rules,
        thresholds={"queue_backlog_messages": settings.backlog_threshold}, for_durations=REMEDIATION_FOR,
        exporter_port=settings.exporter_port, actuator_port=settings.actuator_port,
        prometheus_port=settings.prometheus_port, alertmanager_port=settings.alertmanager_port)


def _urls(loop: Autopilot) -> list[str]:
    return [f"Prometheus alerts    {loop.prometheus.url}/alerts",
            f"Alertmanager         {loop.alertmanager.url}",
            f"actuator status page {loop.actuator.url}/  (bearer token in alerts/secrets/actuator-token)",
            f"actuator audit log   {loop.actuator.url}/actions",
            f"exporter metrics     {loop.exporter.url}/metrics"]


def run_demo(settings: DemoSettings, display: Display) -> int:
    """0 once the pool grew and shrank back, 1 if that did not happen within the timeout."""
    workdir = settings.workdir or Path(tempfile.mkdtemp(prefix="autopilot-demo-"))
    with ExitStack() as running:
        running.callback(display.close)
        dropped = purge(settings.broker_url, settings.queue)
        if dropped:
            display.message(f"dropped {dropped} messages an earlier run left in queue {settings.queue}")
        display.message(f"starting worker {settings.worker} (prefork pool of {settings.concurrency}) "
                        f"on queue {settings.queue}, broker {settings.broker_url}")
        worker = start_worker(settings.broker_url, workdir / "logs", name=settings.worker,
                              queues=(settings.queue,), concurrency=settings.concurrency)
        running.callback(worker.stop)
        display.message("starting the exporter, the actuator, Prometheus and Alertmanager "
                        f"(logs and data in {workdir})")
        loop = running.enter_context(autopilot(_stack_settings(settings, workdir)))
        display.message("open while it runs:\n  " + "\n  ".join(_urls(loop)))
        wait_for(lambda: (observe(loop, queue=settings.queue, worker=settings.worker).pool_size
                          and loop.prometheus.query('up{job="celery-exporter"} == 1')),
                 timeout=30, interval=0.2, what="Prometheus to scrape the exporter and see the worker")
        display.message(f"sending a burst of {settings.tasks} tasks of {settings.task_seconds} s each "
                        f"(backlog threshold {settings.backlog_threshold} messages)")
        progress = Progress(initial_pool=settings.concurrency)
        send_burst(settings.broker_url, settings.queue, tasks=settings.tasks, task_seconds=settings.task_seconds)
        if not _follow(loop, settings, progress, display):
            display.message(f"the pool did not grow and shrink back within {settings.timeout:.0f} s; "
                            f"logs are in {workdir / 'logs'}")
            return 1
        display.message(f"self-healed: pool {settings.concurrency} -> {progress.peak_pool} -> "
                        f"{settings.concurrency}; the pool grew {progress.grown:.1f} s after the burst")
        if settings.keep_running:
            display.message("still running, Ctrl-C to stop:\n  " + "\n  ".join(_urls(loop)))
            threading.Event().wait()
        else:
            display.message("stopping everything (--keep-running keeps the stack up to explore)")
    return 0


def _follow(loop: Autopilot, settings: DemoSettings, progress: Progress, display: Display) -> bool:
    """Show the loop until the pool shrank back (True) or the timeout passed (False)."""
    shown: set[int] = set()
    while not progress.done:
        if progress.elapsed > settings.timeout:
            return False
        seen = observe(loop, queue=settings.queue, worker=settings.worker)
        new_actions = [action for action in seen.actions if action["id"] not in shown]
        shown.update(action["id"] for action in new_actions)
        display.update(seen, progress, new_actions, progress.update(seen))
        time.sleep(LOOK_EVERY)
    return True
