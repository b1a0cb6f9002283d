"""The live self-healing demo, start to end.

A worker with a small pool, the whole loop around it (demo.stack), then a burst of tasks: the
backlog alert fires, Alertmanager posts it, the actuator grows the pool, the backlog drains, the
alert resolves, and once the pool is idle and bigger than it started the actuator shrinks it
back. Then the demo prints where to look and keeps everything up until Ctrl-C, or ends at once
(``exit_when_done``). Every process it started is stopped on the way out, whatever the way out
is, and also when the demo itself is killed (they die with it).
"""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .bundle_config import write_actuator_rules
from .display import Display
from .listeners import ensure_free
from .observe import observe
from .polling import wait_for
from .progress import Progress
from .services import Service, start_worker
from .stack import REMEDIATION_FOR, Autopilot, StackSettings, autopilot
from .traffic import purge, send_burst

# How often the demo looks: the loop's own pace, well under Prometheus' 1 s scrape.
LOOK_EVERY = 0.5
# Target tracking at demo speed: Alertmanager sends the firing backlog again every 2 s with its
# current value, and track-backlog may act on each (the shipped 2 m and 90 s are for production).
# A first value read while the burst is still being published then costs seconds, not minutes.
REPEAT_INTERVAL = "2s"
TRACKING_COOLDOWNS = {"track-backlog": "2s"}
# Tasks per starting pool process in the default burst: enough that the backlog left when the
# alert fires (a few seconds of draining) still asks the shipped rules for a bigger pool.
BURST_PER_PROCESS = 250
MIN_BURST = 1000


def default_burst(concurrency: int) -> int:
    return max(MIN_BURST, BURST_PER_PROCESS * concurrency)


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs. ``tasks`` None is default_burst(concurrency); ``rules`` None is the
    shipped rule file with TRACKING_COOLDOWNS."""

    broker_url: str
    queue: str = "autopilot-demo"
    worker: str = "demo@autopilot"
    concurrency: int = 2
    tasks: int | None = None
    task_seconds: float = 0.05
    backlog_threshold: int = 100
    timeout: float = 180.0
    exit_when_done: bool = False
    rules: Path | None = None
    exporter_port: int | None = 9808
    actuator_port: int | None = 9809
    prometheus_port: int | None = 9090
    alertmanager_port: int | None = 9093
    workdir: Path | None = None

    @property
    def burst(self) -> int:
        return self.tasks if self.tasks is not None else default_burst(self.concurrency)

    def ports(self) -> dict[str, int | None]:
        """Each service's port by what listens there (None: a free one)."""
        return {"exporter": self.exporter_port, "actuator": self.actuator_port,
                "Prometheus": self.prometheus_port, "Alertmanager": self.alertmanager_port}


def _stack_settings(settings: DemoSettings, workdir: Path) -> StackSettings:
    """Demo-sized alerts: the backlog threshold given, remediation alerts after 1 s (the shipped
    rules wait minutes), re-sent every REPEAT_INTERVAL."""
    rules = settings.rules or write_actuator_rules(workdir / "rules", cooldowns=TRACKING_COOLDOWNS)
    return StackSettings(
        broker_url=settings.broker_url, workdir=workdir, queues=(settings.queue,), rules=rules,
        thresholds={"queue_backlog_messages": settings.backlog_threshold}, for_durations=REMEDIATION_FOR,
        repeat_interval=REPEAT_INTERVAL,
        exporter_port=settings.exporter_port, actuator_port=settings.actuator_port,
        prometheus_port=settings.prometheus_port, alertmanager_port=settings.alertmanager_port)


def _urls(loop: Autopilot) -> list[str]:
    return [f"Prometheus alerts    {loop.prometheus.url}/alerts",
            f"Alertmanager         {loop.alertmanager.url}",
            f"actuator status page {loop.actuator.url}/  (bearer token in alerts/secrets/actuator-token)",
            f"actuator audit log   {loop.actuator.url}/actions",
            f"exporter metrics     {loop.exporter.url}/metrics"]


def run_demo(settings: DemoSettings, display: Display) -> int:
    """0 once the pool grew and shrank back, 1 if that did not happen within the timeout.

    Ports are checked before anything starts (PortTaken names who holds one). A working folder
    the demo made itself is removed at the end, unless something went wrong: then its logs stay.
    """
    for what, port in settings.ports().items():
        if port:
            ensure_free(port, what)
    workdir = settings.workdir or Path(tempfile.mkdtemp(prefix="autopilot-demo-"))
    keep = True
    try:
        code = _run(settings, display, workdir)
        keep = code != 0
        return code
    except (KeyboardInterrupt, SystemExit):
        keep = False
        raise
    finally:
        if settings.workdir is None and not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(settings: DemoSettings, display: Display, workdir: Path) -> int:
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
        wait_for(lambda: (observe(loop, queue=settings.queue, worker=settings.worker).pool_size
                          and loop.prometheus.query('up{job="celery-exporter"} == 1')),
                 timeout=30, interval=0.2, what="Prometheus to scrape the exporter and see the worker")
        display.message(f"sending a burst of {settings.burst} tasks of {settings.task_seconds} s each "
                        f"(backlog threshold {settings.backlog_threshold} messages)")
        progress = Progress(initial_pool=settings.concurrency)
        send_burst(settings.broker_url, settings.queue, tasks=settings.burst, task_seconds=settings.task_seconds)
        if not _follow(loop, worker, settings, progress, display):
            display.message(f"the pool did not grow and shrink back within {settings.timeout:.0f} s; "
                            f"logs are in {workdir / 'logs'}")
            return 1
        display.message(f"self-healed: pool {settings.concurrency} -> {progress.peak_pool} -> "
                        f"{settings.concurrency}; the pool grew {progress.grown:.1f} s after the burst")
        display.message("open:\n  " + "\n  ".join(_urls(loop)))
        if settings.exit_when_done:
            display.message("stopping everything")
            return 0
        display.message("everything stays up to explore; Ctrl-C stops it all")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            display.message("stopping everything")
    return 0


def _follow(loop: Autopilot, worker: Service, settings: DemoSettings, progress: Progress,
            display: Display) -> bool:
    """Show the loop until the pool shrank back (True) or the timeout passed (False).

    A look that fails (a service slow to answer) is skipped, unless a process has exited:
    then GaveUp names it.
    """
    shown: set[int] = set()
    while not progress.done:
        if progress.elapsed > settings.timeout:
            return False
        try:
            seen = observe(loop, queue=settings.queue, worker=settings.worker)
        except OSError:
            worker.check_running("while the demo ran")
            loop.check_running()
        else:
            new_actions = [action for action in seen.actions if action["id"] not in shown]
            shown.update(action["id"] for action in new_actions)
            display.update(seen, progress, new_actions, progress.update(seen))
        time.sleep(LOOK_EVERY)
    return True
