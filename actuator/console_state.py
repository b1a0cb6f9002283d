"""What the operator console shows, gathered in one JSON-able snapshot.

- workers: every worker inspection has seen, whether it answers now, its pool (size, autoscaler
  bounds, implementation), the queues it consumes and how many tasks it is running;
- queues: those workers consume plus ``--queues``, with their length and their consumers;
- guards: per rule (and for manual actions) the cooldown left per worker and the hourly budget
  left, the global budget left, the pause switch and dry-run;
- the most recent decisions of the audit log, each worker's reply included.

One snapshot is shared by every console watching (:class:`ConsoleFeed`), so ten open browsers
cost one inspection per refresh, not ten; inspections themselves come through the read API's
:class:`~actuator.worker_inspector.WorkerInspector`, which answers from its cache while fresh.
Strings are kept exactly as workers, the broker and alerts gave them: escaping is the template's
job (HTML) and JSON needs none.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from .control import BrokerUnavailable
from .guard_state import MANUAL_KEY, Usage
from .queue_length import queue_lengths
from .rules import GuardPolicy
from .services import Services
from .unavailable import Unavailable
from .worker_facts import WorkerFacts, queue_names
from .worker_inspector import WorkerInspector

RECENT_DECISIONS = 25


def _worker(name: str, up: bool, info: Mapping[str, Any] | None) -> dict[str, Any]:
    if info is None:
        return {"name": name, "up": up, "pool": None, "pool_size": None, "autoscaler": None, "queues": [],
                "active_tasks": None}
    facts = WorkerFacts.from_replies(name, {key: info[key] for key in ("stats", "active_queues") if key in info})
    autoscaler = facts.autoscaler or None
    active = info.get("active")
    return {"name": name, "up": up, "pool": facts.pool, "pool_size": facts.pool_processes,
            "autoscaler": {"min": autoscaler.get("min"), "max": autoscaler.get("max")} if autoscaler else None,
            "queues": list(facts.queues or ()), "active_tasks": len(active) if isinstance(active, list) else None}


def _budget(limit: int | None, used: int) -> dict[str, Any]:
    return {"per_hour": limit, "used": used, "left": None if limit is None else max(0, limit - used)}


def _guard(key: str, label: str, policy: GuardPolicy, usage: Usage, now: float) -> dict[str, Any]:
    cooldown = policy.cooldown_seconds
    cooling = []
    if cooldown:
        for (rule, worker), sent in sorted(usage.last_sent.items()):
            left = cooldown - (now - sent)
            if rule == key and left > 0:
                cooling.append({"worker": worker, "seconds_left": round(left, 1)})
    return {"name": label, "cooldown_seconds": cooldown, "cooldowns": cooling, "dry_run": policy.dry_run,
            "budget": _budget(policy.max_actions_per_hour, usage.rule_sends.get(key, 0))}


async def _guards(parts: Services) -> dict[str, Any]:
    usage = await parts.guards.state.usage()
    pause = await parts.guards.state.pause_state()
    parts.metrics.paused.set(1 if pause.paused else 0)
    now = time.time()
    rules = [_guard(rule.name, rule.name, rule.policy, usage, now) for rule in parts.rules.rules]
    manual = parts.rules.manual
    return {"rules": rules,
            "manual": _guard(MANUAL_KEY, "manual actions", manual.policy, usage, now) if manual else None,
            "global_budget": _budget(parts.rules.limits.max_actions_per_hour, usage.all_sends),
            "pause": pause.describe()}


async def _cluster(parts: Services, inspector: WorkerInspector) -> dict[str, Any]:
    status = await inspector.status()
    found = await inspector.workers()
    workers = [_worker(name, up, found.get(name)) for name, up in status.items()]
    consumers: dict[str, list[str]] = {name: [] for name in parts.settings.queues}
    for name, info in sorted(found.items()):
        for queue in queue_names(info.get("active_queues")):
            consumers.setdefault(queue, []).append(name)
    lengths = await parts.control.run(lambda connection: queue_lengths(connection, consumers))
    queues = [{"name": name, "messages": lengths.get(name), "consumers": consumers[name]} for name in sorted(consumers)]
    return {"workers": workers, "queues": queues}


async def snapshot(parts: Services, inspector: WorkerInspector) -> dict[str, Any]:
    """Everything the console shows; what cannot be reached is named in ``errors``."""
    errors: list[str] = []
    state: dict[str, Any] = {"dry_run": parts.settings.dry_run, "broker": parts.control.broker,
                             "guard_state": parts.guards.state.description, "workers": [], "queues": [],
                             "guards": None}
    try:
        state.update(await _cluster(parts, inspector))
    except BrokerUnavailable as exc:
        errors.append(str(exc))
    try:
        state["guards"] = await _guards(parts)
    except Unavailable as exc:
        errors.append(str(exc))
    state["actions"] = await parts.audit.decisions({}, RECENT_DECISIONS)
    state["errors"] = errors
    state["taken_at"] = time.time()
    return state


class ConsoleFeed:
    """One snapshot at a time, reused by every watcher for ``max_age`` seconds."""

    def __init__(self, parts: Services, inspector: WorkerInspector, max_age: float) -> None:
        self.parts = parts
        self.inspector = inspector
        self.max_age = max_age
        self._latest: dict[str, Any] | None = None
        self._taken = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """The next reader takes a new snapshot (an operator just acted and wants to see it)."""
        self._latest = None

    async def latest(self) -> dict[str, Any]:
        async with self._lock:
            if self._latest is None or time.monotonic() - self._taken >= self.max_age:
                self._latest = await snapshot(self.parts, self.inspector)
                self._taken = time.monotonic()
            return self._latest
