"""Turning an action's target into live workers, at the moment of acting.

"The workers consuming queue Q" and "all workers" are answered by asking every worker
(``active_queues``). Asking everyone has a cost: without knowing how many workers exist, kombu
must wait the whole timeout for stragglers (and a shorter timeout loses replies on Redis: kombu
leaves a one-second BRPOP behind that swallows the next reply). The :class:`WorkerDirectory`
remembers who answered last time, so the question can stop as soon as that many answered; a
background refresh (and any inspection that times out) keeps it current, and a newcomer that
displaces a known worker from the first replies is followed up by asking the missing ones
directly. A newcomer slower than every known worker is not among those replies: each such
question therefore wakes the background refresh at once, so the next action knows it (within
one ``--inspect-timeout``) instead of after ``--discovery-interval``.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from .control import BrokerUnavailable, RemoteControl
from .worker_facts import WorkerFacts, queue_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A rendered target: ``name`` (one worker), ``consuming`` (a queue's consumers) or ``all``."""

    kind: str
    value: str | None = None

    def describe(self) -> Any:
        return "all" if self.kind == "all" else {self.kind: self.value}


@dataclass
class Resolution:
    workers: list[WorkerFacts] = field(default_factory=list)
    # Why nothing matched, when nothing did ("no worker consumes queue 'x'").
    reason: str | None = None


class WorkerDirectory:
    """The names of the workers that answered the last complete inspection."""

    def __init__(self) -> None:
        self.known: frozenset[str] = frozenset()
        self._stale = asyncio.Event()

    def replace(self, names: Any) -> None:
        self.known = frozenset(names)

    def mark_stale(self) -> None:
        """Ask the background refresh to run now (a newcomer may have gone unnoticed)."""
        self._stale.set()

    async def until_stale(self, interval: float) -> None:
        """Wait ``interval`` seconds, or less if someone marked the directory stale meanwhile."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stale.wait(), interval)
        self._stale.clear()


class TargetResolver:
    def __init__(self, control: RemoteControl, directory: WorkerDirectory | None = None) -> None:
        self.control = control
        self.directory = directory or WorkerDirectory()

    async def everyone(self, method: str) -> dict[str, Any]:
        """Ask every worker; stop as soon as every known worker answered."""
        known = self.directory.known
        if not known:
            replies = await self.control.inspect(method)
            self.directory.replace(replies)
            return replies
        replies = await self.control.inspect(method, limit=len(known))
        missing = known - replies.keys()
        if len(replies) < len(known):
            self.directory.replace(replies)
        elif missing:
            replies.update(await self.control.inspect(method, sorted(missing)))
            self.directory.replace(replies)
        self.directory.mark_stale()
        return replies

    async def refresh(self) -> None:
        """A complete inspection (waits the whole timeout), for the background refresh."""
        self.directory.replace(await self.control.inspect("ping"))

    async def resolve(self, target: Target, inspections: frozenset[str]) -> Resolution:
        """The live workers ``target`` means now, with the facts ``inspections`` gather."""
        if target.kind == "name":
            assert target.value is not None
            facts = await self.facts([target.value], inspections or frozenset({"ping"}))
            if not facts:
                timeout = self.control.settings.inspect_timeout
                return Resolution(reason=f"worker {target.value!r} did not answer inspection within "
                                         f"{timeout:g}s (unknown or down)")
            return Resolution(facts)
        queues = await self.everyone("active_queues")
        if target.kind == "consuming":
            names = [name for name, reply in queues.items() if target.value in queue_names(reply)]
            reason = f"no worker consumes queue {target.value!r}"
        else:
            names = list(queues)
            reason = "no worker answered inspection"
        if not names:
            return Resolution(reason=reason)
        facts = await self.facts(names, inspections, {"active_queues": queues})
        return Resolution(facts, None if facts else reason)

    async def facts(self, names: list[str], inspections: frozenset[str],
                    known: dict[str, dict[str, Any]] | None = None) -> list[WorkerFacts]:
        """Inspect ``names`` (only them, so replies are counted) and keep those that answered all."""
        methods = sorted(inspections)
        results = await asyncio.gather(*(self.control.inspect(method, names) for method in methods))
        replies = dict(known or {})
        replies.update(zip(methods, results, strict=True))
        answered = [name for name in sorted(names) if all(name in replies[m] for m in replies)]
        return [WorkerFacts.from_replies(name, {m: replies[m][name] for m in replies}) for name in answered]


async def refresh_forever(resolver: TargetResolver, interval: float) -> None:
    """Keep the directory current in the background; a broker outage only delays it."""
    while True:
        try:
            await resolver.refresh()
        except BrokerUnavailable as exc:
            log.warning("worker discovery failed: %s", exc)
        await resolver.directory.until_stale(interval)
