"""Pool bounds and target tracking: from a pool action and a worker's pool size to what is sent.

``pool_grow`` is clipped so the pool never exceeds ``max_pool``, ``pool_shrink`` so it never goes
below ``min_pool``; clipped to nothing, the action is held with the numbers. ``pool_target``
brings the pool to ``clamp(size, min_pool, max_pool)`` with a grow or a shrink by the difference
(nothing when it is there already). On a worker started with ``--autoscale`` a target sets the
autoscaler's ceiling instead (``autoscale max=target``, its floor lowered to the target if it was
higher): the autoscaler keeps choosing the size below it.

Pure arithmetic: the caller supplies the current size (live inspection, or the size the actuator
asked for moments ago while the pool has not caught up yet).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .actions import Action
from .worker_facts import WorkerFacts


@dataclass(frozen=True)
class PoolPlan:
    """The command for one worker; ``size_after`` is the pool size to expect once it ran."""

    command: str
    arguments: Mapping[str, Any]
    size_after: int | None
    note: str | None = None


@dataclass(frozen=True)
class Hold:
    """Nothing to send to this worker (``guard`` is ``bounds`` or ``at_target``)."""

    guard: str
    reason: str


def plan_pool(action: Action, facts: WorkerFacts, current: int | None) -> PoolPlan | Hold:
    """What to send ``facts.name`` for the pool action ``action``, its pool having ``current``
    processes (None when inspection did not say)."""
    name = action.spec.name
    if name == "pool_target":
        return _target(action, facts, current)
    n = action.arguments["n"]
    limit = action.bounds.max_pool if name == "pool_grow" else action.bounds.min_pool
    if limit is None:
        after = None if current is None else max(0, current + n if name == "pool_grow" else current - n)
        return PoolPlan(name, {"n": n}, after)
    key = "max_pool" if name == "pool_grow" else "min_pool"
    if current is None:
        return _unknown(facts, f"{key} {limit} cannot be kept")
    room = limit - current if name == "pool_grow" else current - limit
    verb = "grow" if name == "pool_grow" else "shrink"
    if room <= 0:
        return Hold("bounds", f"bounds: pool of {facts.name} has {current} processes and {key} is "
                              f"{limit}: {verb} by {n} clipped to 0")
    allowed = min(n, room)
    note = (f"n clipped from {n} to {allowed}: pool has {current} processes, {key} is {limit}"
            if allowed < n else None)
    return PoolPlan(name, {"n": allowed}, current + allowed if name == "pool_grow" else current - allowed, note)


def _target(action: Action, facts: WorkerFacts, current: int | None) -> PoolPlan | Hold:
    size, low, high = action.arguments["size"], action.bounds.min_pool, action.bounds.max_pool
    assert low is not None and high is not None  # required by the rule file for pool_target
    target = min(max(size, low), high)
    why = f"target {target} (size {size} within min_pool {low}, max_pool {high})"
    autoscaler = facts.autoscaler
    if autoscaler:
        ceiling, floor = autoscaler.get("max"), autoscaler.get("min")
        if ceiling == target:
            return Hold("at_target", f"at target: the autoscaler of {facts.name} has max {ceiling}; {why}")
        floor = target if not isinstance(floor, int) else min(floor, target)
        return PoolPlan("autoscale", {"max": target, "min": floor}, None,
                        f"{why}; autoscaler max was {ceiling}")
    if current is None:
        return _unknown(facts, f"it cannot be brought to {why}")
    if current == target:
        return Hold("at_target", f"at target: pool of {facts.name} has {current} processes; {why}")
    command = "pool_grow" if target > current else "pool_shrink"
    return PoolPlan(command, {"n": abs(target - current)}, target, f"{why}; pool had {current} processes")


def _unknown(facts: WorkerFacts, consequence: str) -> Hold:
    return Hold("bounds", f"bounds: the pool size of {facts.name} is unknown (inspection did not "
                          f"report it), so {consequence}")
