"""``python -m demo`` (``./run.sh demo``): flags and environment variables → DemoSettings.

Every flag ``--some-flag`` also reads ``AUTOPILOT_DEMO_SOME_FLAG``. The only module of the demo
that reads flags, the environment or the terminal.
"""
from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from kombu.exceptions import OperationalError
from rich.console import Console

from .bundle_config import ACTUATOR_RULES_FILE
from .display import LiveDisplay, PlainDisplay
from .listeners import PortTaken
from .polling import Timeout
from .run import BURST_PER_PROCESS, MIN_BURST, TRACKING_COOLDOWNS, DemoSettings, run_demo
from .services import NameTaken

F = Callable[..., Any]


def option(*declarations: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option that also reads ``AUTOPILOT_DEMO_<FLAG>`` and shows its default."""
    flag = next(d for d in declarations if d.startswith("--"))
    envvar = "AUTOPILOT_DEMO_" + flag[2:].upper().replace("-", "_")
    return click.option(*declarations, envvar=envvar, show_envvar=True, **{"show_default": True, **kwargs})


def _port(default: int, what: str) -> Callable[[F], F]:
    return option(f"--{what}-port", type=click.IntRange(0, 65535), default=default,
                  help=f"Port of the {what} on 127.0.0.1; 0 picks a free one.")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@option("--broker-url", default="redis://127.0.0.1:6379/0",
        help="Redis the demo worker and the services use (./run.sh starts one on 6379).")
@option("--queue", default="autopilot-demo", help="The demo's own queue (emptied at start).")
@option("--concurrency", type=click.IntRange(1, 8), default=2,
        help="The worker's starting pool size, which the actuator grows (up to the rules' max_pool "
             "of 10) and shrinks back to.")
@option("--tasks", type=click.IntRange(1), default=None, help="Tasks in the burst.",
        show_default=f"{BURST_PER_PROCESS} per starting pool process, at least {MIN_BURST}")
@option("--task-seconds", type=click.FloatRange(0), default=0.05, help="How long each task sleeps.")
@option("--backlog-threshold", type=click.IntRange(1), default=100,
        help="Messages waiting before CeleryQueueBacklog fires (the shipped default is 100 too).")
@option("--rules", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
        help="The actuator's rule file, used as it is.",
        show_default=f"{ACTUATOR_RULES_FILE.relative_to(ACTUATOR_RULES_FILE.parents[1])}, track-backlog's "
                     f"cooldown cut to {TRACKING_COOLDOWNS['track-backlog']}")
@option("--timeout", type=click.FloatRange(1), default=180.0,
        help="Seconds after the burst to give up if the pool has not grown and shrunk back.")
@option("--exit-when-done", is_flag=True, default=False,
        help="Stop everything as soon as the story ends (for scripts and CI) instead of staying up "
             "until Ctrl-C to explore Prometheus, Alertmanager and the actuator.")
@option("--plain", is_flag=True, default=False,
        help="Plain lines instead of the live display (always so when stdout is not a terminal).")
@_port(9808, "exporter")
@_port(9809, "actuator")
@_port(9090, "prometheus")
@_port(9093, "alertmanager")
@option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Where logs, the audit log and Prometheus' data go; a new temporary folder by default.")
def main(plain: bool, **options: Any) -> None:
    """The live self-healing demo: a small worker, a burst of tasks, and the loop that heals it."""
    ports = {f"{name}_port": options.pop(f"{name}_port") or None
             for name in ("exporter", "actuator", "prometheus", "alertmanager")}
    settings = DemoSettings(**options, **ports)
    display = PlainDisplay(sys.stdout) if plain or not sys.stdout.isatty() else LiveDisplay(Console())
    # SIGTERM and SIGHUP (the terminal closed) unwind like Ctrl-C, so every process the demo
    # started is stopped; were the demo killed outright, they would get SIGTERM from the kernel.
    # Ctrl-C works even when the demo was started in a shell's background, which ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(128 + signal.SIGHUP))
    try:
        sys.exit(run_demo(settings, display))
    except KeyboardInterrupt:
        click.echo("interrupted; everything the demo started is stopped", err=True)
        sys.exit(130)
    except OperationalError as exc:
        click.echo(f"error: cannot reach the broker {settings.broker_url}: {exc} "
                   "(./run.sh demo starts Redis on 127.0.0.1:6379)", err=True)
        sys.exit(1)
    except PortTaken as exc:
        flag = f"--{exc.what.lower()}-port"
        click.echo(f"error: {exc}. Stop it, or pick another port with {flag} (0: any free port). "
                   "Debian's own services: sudo systemctl disable --now prometheus prometheus-alertmanager",
                   err=True)
        sys.exit(1)
    except NameTaken as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    # OSError: a service that stopped answering (URLError) or a process that could not start.
    except (RuntimeError, Timeout, OSError) as exc:
        click.echo(f"error: the demo failed: {exc}", err=True)
        sys.exit(1)
