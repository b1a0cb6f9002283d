"""What the pollers last saw: worker inspection, queue depths, and each source's own health.

Pollers replace whole entries under ``lock``; a scrape copies them under the same lock. Nothing
here waits on the broker.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class WorkerStats:
    """The parts of a worker's ``inspect stats`` reply that become metrics."""

    pool_processes: int | None = None
    max_concurrency: int | None = None
    autoscaler_min: int | None = None
    autoscaler_max: int | None = None
    prefetch_count: int | None = None
    max_rss_bytes: int | None = None


@dataclass(frozen=True)
class QueueDepth:
    messages: int
    consumers: int | None = None  # known only where the broker counts consumers (AMQP)


@dataclass
class SourceHealth:
    up: bool = False
    duration: float = 0.0
    errors: int = 0


@dataclass
class PollResults:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stats: dict[str, WorkerStats] = field(default_factory=dict)
    consumed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # hostname -> Liveness.clock() time of its last inspection reply.
    answered_at: dict[str, float] = field(default_factory=dict)
    queues: dict[str, QueueDepth] = field(default_factory=dict)
    # time.monotonic() after which ``queues`` is too old to show.
    queues_valid_until: float = float("-inf")
    # queue name -> time.monotonic() of the last inspection reply that had a worker consume it. A
    # queue whose last consumer was cancelled is still measured until forgotten (forget_queues),
    # so messages that nobody will run show up instead of vanishing with their consumer.
    consumed_at: dict[str, float] = field(default_factory=dict)
    sources: dict[str, SourceHealth] = field(default_factory=dict)
    broker_connected: bool = False

    def record(self, source: str, ok: bool, duration: float) -> None:
        with self.lock:
            health = self.sources.setdefault(source, SourceHealth())
            health.up = ok
            health.duration = duration
            if not ok:
                health.errors += 1

    def known_queues(self, always: tuple[str, ...]) -> list[str]:
        """The queues to measure: those named by flags, then those workers consume or consumed."""
        with self.lock:
            seen = dict.fromkeys(always)
            for queues in self.consumed.values():
                seen.update(dict.fromkeys(queues))
            seen.update(dict.fromkeys(self.consumed_at))
        return list(seen)

    def note_consumed(self, hostname: str, queues: tuple[str, ...]) -> None:
        """What ``hostname`` consumes, from an inspection reply just received (hold ``lock``)."""
        self.consumed[hostname] = queues
        self.consumed_at.update(dict.fromkeys(queues, time.monotonic()))

    def forget_queues(self, unconsumed_for: float) -> set[str]:
        """Stop measuring the queues no worker consumed for ``unconsumed_for`` seconds; returns them."""
        cutoff = time.monotonic() - unconsumed_for
        with self.lock:
            gone = {name for name, at in self.consumed_at.items() if at < cutoff}
            for name in gone:
                del self.consumed_at[name]
        return gone

    def copy(self) -> PollResults:
        with self.lock:
            return PollResults(
                stats=dict(self.stats), consumed=dict(self.consumed),
                answered_at=dict(self.answered_at), queues=dict(self.queues),
                queues_valid_until=self.queues_valid_until,
                sources={name: replace(health) for name, health in self.sources.items()},
                broker_connected=self.broker_connected,
            )

    def purge_hostnames(self, hostnames: set[str]) -> None:
        with self.lock:
            for hostname in hostnames:
                self.stats.pop(hostname, None)
                self.consumed.pop(hostname, None)
                self.answered_at.pop(hostname, None)
