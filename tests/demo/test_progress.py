"""demo.progress: the demo's story from observations, on a clock the test moves."""
from __future__ import annotations

from demo.observe import Observation
from demo.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def look(progress: Progress, clock: Clock, at: float, queue: int, pool: int, *firing: str) -> list[str]:
    clock.now = 100.0 + at
    return progress.update(Observation(queue_length=queue, pool_size=pool, firing=firing))


def test_the_whole_story_in_order():
    clock = Clock()
    progress = Progress(initial_pool=2, clock=clock)
    assert look(progress, clock, 1, 900, 2) == []
    assert look(progress, clock, 3, 800, 2, "CeleryQueueBacklog") == ["CeleryQueueBacklog fired after 3.0 s"]
    assert look(progress, clock, 7.5, 600, 8, "CeleryQueueBacklog") == [
        "pool grew from 2 to 8 processes 7.5 s after the burst"]
    assert look(progress, clock, 12, 0, 8) == ["backlog drained after 12.0 s", "CeleryQueueBacklog resolved after 12.0 s"]
    assert not progress.done
    assert look(progress, clock, 14, 0, 2) == ["pool shrank back to 2 processes after 14.0 s (peak 8)"]
    assert progress.done and (progress.fired, progress.grown, progress.shrunk) == (3.0, 7.5, 14.0)


def test_the_pool_is_not_back_before_it_grew_nor_before_the_alert_resolved():
    clock = Clock()
    progress = Progress(initial_pool=2, clock=clock)
    look(progress, clock, 2, 500, 2, "CeleryQueueBacklog")
    assert look(progress, clock, 3, 400, 2, "CeleryQueueBacklog") == []
    look(progress, clock, 5, 300, 4, "CeleryQueueBacklog")
    assert look(progress, clock, 6, 50, 2, "CeleryQueueBacklog") == []
    assert look(progress, clock, 7, 40, 2) == ["CeleryQueueBacklog resolved after 7.0 s",
                                               "pool shrank back to 2 processes after 7.0 s (peak 4)"]
    assert progress.drained is None


def test_nothing_happens_while_nothing_is_known():
    clock = Clock()
    progress = Progress(initial_pool=2, clock=clock)
    assert progress.update(Observation(queue_length=None, pool_size=None, firing=())) == []
    assert progress.peak_pool == 2 and not progress.done
