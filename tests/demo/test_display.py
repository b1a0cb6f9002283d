"""demo.display: what the live dashboard and the plain lines show for a known story."""
from __future__ import annotations

import io

from rich.console import Console

from demo.display import LiveDisplay, PlainDisplay, describe_action
from demo.observe import Observation
from demo.progress import Progress
from tests.demo.test_progress import Clock

GROW = {
    "source": "webhook", "rule": "grow-on-backlog", "command": "pool_grow", "outcome": "sent", "reason": None,
    "arguments": {"n": 6, "queue": None},
    "alert": {"alertname": "CeleryQueueBacklog", "status": "firing"},
    "workers": [{"worker": "celery@demo", "outcome": "ok"}],
}


def test_an_action_reads_as_trigger_rule_command_and_each_workers_answer():
    assert describe_action(GROW) == ("CeleryQueueBacklog firing -> rule grow-on-backlog: pool_grow n=6 -> sent "
                                     "[celery@demo: ok]")
    suppressed = {**GROW, "command": None, "outcome": "suppressed", "reason": "cooldown", "workers": []}
    assert describe_action(suppressed) == "CeleryQueueBacklog firing -> cooldown"


def test_plain_lines_on_each_change_every_status_interval_and_for_actions_and_milestones():
    clock, out = Clock(), io.StringIO()
    progress = Progress(initial_pool=2, clock=clock)
    display = PlainDisplay(out, status_every=2.0)

    def look(at: float, queue: int, pool: int, *firing: str, actions: tuple[dict, ...] = ()) -> list[str]:
        clock.now = 100.0 + at
        seen = Observation(queue_length=queue, pool_size=pool, firing=firing)
        before = out.getvalue().count("\n")
        display.update(seen, progress, actions, progress.update(seen))
        return out.getvalue().splitlines()[before:]

    assert look(1.0, 900, 2) == ["[  1.0s] queue 900  pool 2  firing: -"]
    assert look(1.5, 880, 2) == []  # nothing changed but the depth, and 2 s have not passed
    assert look(3.0, 850, 2) == ["[  3.0s] queue 850  pool 2  firing: -"]
    assert look(3.5, 840, 2, "CeleryQueueBacklog") == [
        "[  3.5s] queue 840  pool 2  firing: CeleryQueueBacklog",
        "[  3.5s] ==> CeleryQueueBacklog fired after 3.5 s"]
    assert look(4.0, 800, 8, "CeleryQueueBacklog", actions=(GROW,)) == [
        "[  4.0s] queue 800  pool 8  firing: CeleryQueueBacklog",
        f"[  4.0s] action: {describe_action(GROW)}",
        "[  4.0s] ==> pool grew from 2 to 8 processes 4.0 s after the burst"]


def test_the_live_dashboard_shows_depth_pool_alerts_milestones_and_actions():
    clock = Clock()
    console = Console(file=io.StringIO(), record=True, force_terminal=True, width=160)
    progress = Progress(initial_pool=2, clock=clock)
    display = LiveDisplay(console)
    clock.now = 103.0
    seen = Observation(queue_length=640, pool_size=8, firing=("CeleryQueueBacklog",))
    display.update(seen, progress, [GROW], progress.update(seen))
    display.close()
    text = console.export_text()
    last = text[text.rindex("elapsed"):]  # the final frame
    assert "3.0 s" in last
    assert "queue depth" in last and "640" in last
    assert "pool size" in last and "■" * 8 in last and "■" * 9 not in last
    assert "firing alerts" in last and "CeleryQueueBacklog" in last
    assert "✓ CeleryQueueBacklog fired after 3.0 s" in last
    assert describe_action(GROW) in last
