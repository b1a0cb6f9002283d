"""The demo's terminal output: a live dashboard on a terminal, plain lines otherwise.

Both show the same things: queue depth, pool size, firing alerts, the actuator's actions as they
are recorded, and the milestones of the story (demo.progress). Plain mode prints a line per
change, for logs, CI and the demo's own test.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .observe import Observation
from .progress import Progress

_SHOWN_ACTIONS = 8
_BAR_WIDTH = 40


def describe_action(action: dict[str, Any]) -> str:
    """``rule: command args -> outcome [worker: outcome]`` from one audit-log record."""
    arguments = " ".join(f"{key}={value}" for key, value in action["arguments"].items() if value is not None)
    workers = ", ".join(f"{w['worker']}: {w['outcome']}" for w in action["workers"])
    alert = action["alert"]
    trigger = f"{alert['alertname']} {alert['status']}" if alert else action["source"]
    if action["command"] is None:
        return f"{trigger} -> {action['reason'] or action['outcome']}"
    return (f"{trigger} -> rule {action['rule'] or '-'}: {action['command']} {arguments} "
            f"-> {action['outcome']}" + (f" [{workers}]" if workers else "")
            + (f" ({action['reason']})" if action["reason"] else ""))


class Display(Protocol):
    def message(self, text: str) -> None: ...
    def update(self, seen: Observation, progress: Progress, new_actions: Sequence[dict[str, Any]],
               milestones: Sequence[str]) -> None: ...
    def close(self) -> None: ...


class PlainDisplay:
    """A line per change of pool size or firing alerts, per action and per milestone, and the
    queue depth every few seconds."""

    def __init__(self, out: TextIO, status_every: float = 2.0) -> None:
        self.out = out
        self.status_every = status_every
        self._last: tuple[Any, ...] | None = None
        self._last_time = -status_every

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def message(self, text: str) -> None:
        self._print(text)

    def update(self, seen: Observation, progress: Progress, new_actions: Sequence[dict[str, Any]],
               milestones: Sequence[str]) -> None:
        elapsed = progress.elapsed
        key = (seen.pool_size, seen.firing)
        if key != self._last or elapsed - self._last_time >= self.status_every:
            self._last, self._last_time = key, elapsed
            self._print(f"[{elapsed:5.1f}s] queue {seen.queue_length if seen.queue_length is not None else '?'}"
                        f"  pool {seen.pool_size if seen.pool_size is not None else '?'}"
                        f"  firing: {', '.join(seen.firing) or '-'}")
        for action in new_actions:
            self._print(f"[{elapsed:5.1f}s] action: {describe_action(action)}")
        for milestone in milestones:
            self._print(f"[{elapsed:5.1f}s] ==> {milestone}")

    def close(self) -> None:
        """Nothing to tear down: every line is already out."""


class LiveDisplay:
    """A rich dashboard redrawn in place: status, milestones, the latest actions."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.milestones: list[str] = []
        self.actions: list[str] = []
        self.peak_queue = 1
        self.live = Live(Text("starting..."), console=console, refresh_per_second=4, transient=False)
        self.live.start()

    def message(self, text: str) -> None:
        self.live.console.print(text, markup=False)

    def update(self, seen: Observation, progress: Progress, new_actions: Sequence[dict[str, Any]],
               milestones: Sequence[str]) -> None:
        self.milestones.extend(milestones)
        self.actions.extend(describe_action(action) for action in new_actions)
        self.live.update(self._render(seen, progress))

    def _render(self, seen: Observation, progress: Progress) -> Group:
        status = Table.grid(padding=(0, 2))
        status.add_column(style="bold")
        status.add_column()
        queue = seen.queue_length
        if queue is not None:
            self.peak_queue = max(self.peak_queue, queue)
        bar = "█" * round(_BAR_WIDTH * (queue or 0) / self.peak_queue)
        status.add_row("elapsed", f"{progress.elapsed:.1f} s")
        status.add_row("queue depth", f"{queue if queue is not None else '?':>5} [cyan]{bar}[/]")
        pool = seen.pool_size
        status.add_row("pool size", f"{pool if pool is not None else '?':>5} [green]{'■' * (pool or 0)}[/]")
        status.add_row("firing alerts", Text(", ".join(seen.firing), style="red") if seen.firing else "none")
        story = Table(title="milestones", title_justify="left", show_header=False, box=None)
        for milestone in self.milestones:
            story.add_row(f"[bold green]✓[/] {milestone}")
        actions = Table(title="actuator actions", title_justify="left", show_header=False, box=None)
        for line in self.actions[-_SHOWN_ACTIONS:]:
            # Text, not markup: "[celery@host: ok]" would otherwise be read as a style tag and vanish.
            actions.add_row(Text(line))
        return Group(status, Text(""), story, Text(""), actions)

    def close(self) -> None:
        self.live.stop()
