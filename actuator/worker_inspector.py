"""Everything Flower knows about each worker, from live inspection, for ``GET /api/workers``.

Flower fills its worker list with eight inspections (``stats``, ``active_queues``,
``registered``, ``scheduled``, ``active``, ``reserved``, ``revoked``, ``conf``) and answers from
that list until someone asks for ``refresh``, so scripts written for Flower read exactly those
keys. Here the list is never older than ``max_age`` seconds: a script polling pool sizes must not
act on what a worker looked like a minute ago. An inspection of everyone first asks ``stats``
the way target resolution does (stopping as soon as every known worker answered), then the seven
others of just the workers that answered, so none of them waits out the inspection timeout.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .targets import TargetResolver

INSPECT_METHODS = ("stats", "active_queues", "registered", "scheduled", "active", "reserved", "revoked",
                   "conf")
WorkerInfo = dict[str, Any]


class WorkerInspector:
    def __init__(self, resolver: TargetResolver, max_age: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.resolver = resolver
        self.max_age = max_age
        self._clock = clock
        self._workers: dict[str, WorkerInfo] = {}
        self._inspected_at: dict[str, float] = {}
        self._everyone_at: float | None = None
        self._seen: set[str] = set()
        # One inspection at a time: concurrent readers then share it instead of each sending eight.
        self._lock = asyncio.Lock()

    async def workers(self, name: str | None = None, refresh: bool = False) -> dict[str, WorkerInfo]:
        """Every worker (or just ``name``) that answered; fresh when ``refresh`` or when older than max_age."""
        async with self._lock:
            if name is None:
                if refresh or not self._fresh(self._everyone_at):
                    await self._inspect_everyone()
                return dict(self._workers)
            if refresh or not self._fresh(self._inspected_at.get(name)):
                await self._inspect([name])
            return {name: self._workers[name]} if name in self._workers else {}

    async def status(self, refresh: bool = False) -> dict[str, bool]:
        """Flower's ``?status=1``: every worker ever seen, and whether it answered the last inspection."""
        answering = await self.workers(refresh=refresh)
        return {name: name in answering for name in sorted(self._seen)}

    def _fresh(self, inspected_at: float | None) -> bool:
        return inspected_at is not None and self._clock() - inspected_at < self.max_age

    async def _inspect_everyone(self) -> None:
        infos = await self._complete(await self.resolver.everyone("stats"))
        now = self._clock()
        self._workers = infos
        self._inspected_at = dict.fromkeys(infos, now)
        self._everyone_at = now
        self._seen.update(infos)

    async def _inspect(self, names: list[str]) -> None:
        infos = await self._complete(await self.resolver.control.inspect("stats", names))
        now = self._clock()
        for name in names:
            if name in infos:
                self._workers[name] = infos[name]
                self._inspected_at[name] = now
                self._seen.add(name)
            else:
                self._workers.pop(name, None)
                self._inspected_at.pop(name, None)

    async def _complete(self, stats: dict[str, Any]) -> dict[str, WorkerInfo]:
        """The other inspections, of just the workers that answered ``stats``, grouped by worker.

        Asking only those means a worker that is gone costs one inspection timeout, not eight.
        """
        names = sorted(stats)
        methods = INSPECT_METHODS[1:]
        control = self.resolver.control
        replies = await asyncio.gather(*(control.inspect(method, names) for method in methods))
        infos: dict[str, WorkerInfo] = {name: {"stats": reply} for name, reply in stats.items() if reply is not None}
        for method, by_worker in zip(methods, replies, strict=True):
            for name, reply in by_worker.items():
                if reply is not None:
                    infos.setdefault(name, {})[method] = reply
        stamp = time.time()
        for info in infos.values():
            info["timestamp"] = stamp
        return infos
