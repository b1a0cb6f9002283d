"""Pool bounds and target tracking: from a pool action and a worker's pool size to what is sent.

``pool_grow`` is clipped so the pool never exceeds ``max_pool``, ``pool_shrink`` so it never goes
below ``min_pool`` and never below one process (:data:`MIN_PROCESSES`, whatever the bounds say);
clipped to nothing, the action is held with the numbers. ``pool_target`` brings the pool to
``clamp(size, min_pool, max_pool)`` with a grow or a shrink by the difference (nothing when it is
there already, or when its ``direction`` forbids that way). On a worker started with
``--autoscale`` a target sets the autoscaler's ceiling instead (``autoscale max=target``, never
below the autoscaler's floor, which is kept): the autoscaler keeps choosing the size below it.
``autoscale`` itself is clipped to the bounds.

Which size: live inspection is the truth, but a prefork pool shows new processes 0-5 s after
``pool_grow`` answers, so the size the actuator asked for moments ago (``remembered``) may be
the truer one. A plan takes the cautious one for its direction: a grow counts from the larger of
the two, a shrink from the smaller, so neither a stale memory nor a slow pool can make it
overshoot. A target between the two is held until the pool settles.

Pure arithmetic: the caller supplies both sizes and the bounds.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .actions import Action
from .rules import DOWN, UP, Bounds
from .worker_facts import WorkerFacts

_ONE_WAY = {UP: "direction: up only grows", DOWN: "direction: down only shrinks"}
# A prefork pool shrunk to no process never runs a task again (nothing grows it back): no plan
# ever leaves fewer, whatever the rules or the API ask.
MIN_PROCESSES = 1


@dataclass(frozen=True)
class PoolPlan:
    """The command for one worker; ``size_after`` is the pool size to expect once it ran."""

    command: str
    arguments: Mapping[str, Any]
    size_after: int | None
    note: str | None = None


@dataclass(frozen=True)
class Hold:
    """Nothing to send to this worker (``guard`` is ``bounds`` or ``at_target``).

    ``transient`` when the reason may pass by itself (the pool size is unknown or settling), so
    the notification should act when it comes again; a pool at its bound or target is final.
    """

    guard: str
    reason: str
    transient: bool = False


@dataclass(frozen=True)
class PoolSize:
    """The pool size as live inspection reports it and as the actuator last asked for it."""

    live: int | None
    remembered: int | None = None

    @property
    def low(self) -> int | None:
        return min((n for n in (self.live, self.remembered) if n is not None), default=None)

    @property
    def high(self) -> int | None:
        return max((n for n in (self.live, self.remembered) if n is not None), default=None)

    def describe(self, current: int) -> str:
        if self.remembered is None or self.remembered == self.live:
            return f"{current} processes"
        live = "unknown" if self.live is None else self.live
        return f"{current} processes (live inspection {live}, {self.remembered} asked for moments ago)"


def plan_pool(action: Action, facts: WorkerFacts, size: PoolSize, bounds: Bounds) -> PoolPlan | Hold:
    """What to send ``facts.name`` for the pool action ``action`` within ``bounds`` (the action's
    own, narrowed by the file's limits)."""
    name = action.spec.name
    if name == "autoscale":
        return _autoscale(action, facts, bounds)
    if name == "pool_target":
        return _target(action, facts, size, bounds)
    if name == "pool_grow":
        return _grow(action.arguments["n"], facts, size, bounds.max_pool)
    return _shrink(action.arguments["n"], facts, size, bounds.min_pool)


def _grow(n: int, facts: WorkerFacts, size: PoolSize, limit: int | None) -> PoolPlan | Hold:
    current = size.high
    if limit is None:
        return PoolPlan("pool_grow", {"n": n}, None if current is None else current + n)
    if current is None:
        return _unknown(facts, f"max_pool {limit} cannot be kept")
    return _clipped("pool_grow", n, limit - current, size.describe(current), f"max_pool is {limit}",
                    facts, current + min(n, limit - current))


def _shrink(n: int, facts: WorkerFacts, size: PoolSize, min_pool: int | None) -> PoolPlan | Hold:
    floor = max(min_pool or 0, MIN_PROCESSES)
    rule = f"min_pool is {min_pool}" if min_pool else f"a pool keeps at least {MIN_PROCESSES} process"
    current = size.low
    if current is None:
        return _unknown(facts, f"a shrink could leave fewer than {floor} processes")
    return _clipped("pool_shrink", n, current - floor, size.describe(current), rule,
                    facts, current - min(n, current - floor))


def _clipped(command: str, n: int, room: int, pool: str, rule: str, facts: WorkerFacts,
             after: int) -> PoolPlan | Hold:
    if room <= 0:
        verb = "grow" if command == "pool_grow" else "shrink"
        return Hold("bounds", f"bounds: pool of {facts.name} has {pool} and {rule}: {verb} by {n} clipped to 0")
    allowed = min(n, room)
    note = f"n clipped from {n} to {allowed}: pool has {pool}, {rule}" if allowed < n else None
    return PoolPlan(command, {"n": allowed}, after, note)


def _target(action: Action, facts: WorkerFacts, size: PoolSize, bounds: Bounds) -> PoolPlan | Hold:
    requested, high = action.arguments["size"], bounds.max_pool
    low = max(bounds.min_pool or 0, MIN_PROCESSES)
    assert high is not None  # required by the rule file for pool_target
    target = min(max(requested, low), high)
    why = f"target {target} (size {requested} within min_pool {low}, max_pool {high})"
    direction = action.direction
    if facts.autoscaler:
        return _ceiling(facts, target, why, direction)
    smallest, largest = size.low, size.high
    if smallest is None or largest is None:
        return _unknown(facts, f"it cannot be brought to {why}")
    if smallest < largest and smallest <= target <= largest:
        return Hold("bounds", f"bounds: pool of {facts.name} is settling: live inspection shows {size.live} "
                              f"processes, {size.remembered} were asked for moments ago; {why} lies between, "
                              "so nothing is sent until it settles", transient=True)
    if target > largest:
        if direction == DOWN:
            return Hold("at_target", f"at target: pool of {facts.name} has {largest} processes, at most the "
                                     f"{why} ({_ONE_WAY[DOWN]})")
        return PoolPlan("pool_grow", {"n": target - largest}, target,
                        f"{why}; pool had {size.describe(largest)}")
    if target < smallest:
        if direction == UP:
            return Hold("at_target", f"at target: pool of {facts.name} has {smallest} processes, at least the "
                                     f"{why} ({_ONE_WAY[UP]})")
        return PoolPlan("pool_shrink", {"n": smallest - target}, target,
                        f"{why}; pool had {size.describe(smallest)}")
    return Hold("at_target", f"at target: pool of {facts.name} has {target} processes; {why}")


def _ceiling(facts: WorkerFacts, target: int, why: str, direction: str) -> PoolPlan | Hold:
    """``pool_target`` on an autoscaling worker: its ceiling becomes the target, never below its
    floor (the floor is what the worker was started or set with; the actuator keeps it)."""
    assert facts.autoscaler is not None
    ceiling, floor = facts.autoscaler.get("max"), facts.autoscaler.get("min")
    if not isinstance(ceiling, int):
        return _unknown(facts, f"its autoscaler's max cannot be brought to {why}")
    floor = floor if isinstance(floor, int) else None
    wanted = max(target, floor or 0)
    kept = f"; kept at the autoscaler's min {floor}" if wanted > target else ""
    if wanted == ceiling:
        return Hold("at_target", f"at target: the autoscaler of {facts.name} has max {ceiling}; {why}{kept}")
    if (wanted > ceiling and direction == DOWN) or (wanted < ceiling and direction == UP):
        return Hold("at_target", f"at target: the autoscaler of {facts.name} has max {ceiling}; {why}{kept} "
                                 f"({_ONE_WAY[direction]})")
    arguments = {"max": wanted, **({"min": floor} if floor is not None else {})}
    return PoolPlan("autoscale", arguments, None, f"{why}{kept}; autoscaler max was {ceiling}")


def _autoscale(action: Action, facts: WorkerFacts, bounds: Bounds) -> PoolPlan | Hold:
    """``autoscale max= min=`` within the bounds: max clipped to max_pool, min raised to min_pool."""
    ceiling, floor = action.arguments["max"], action.arguments["min"]
    new_ceiling = min(ceiling, bounds.max_pool) if bounds.max_pool is not None else ceiling
    new_floor = max(floor, bounds.min_pool) if bounds.min_pool is not None else floor
    if new_floor > new_ceiling:
        return Hold("bounds", f"bounds: autoscale max={ceiling} min={floor} on {facts.name} cannot keep within "
                              f"min_pool {bounds.min_pool} and max_pool {bounds.max_pool}")
    changes = (("max", ceiling, new_ceiling, "max_pool"), ("min", floor, new_floor, "min_pool"))
    notes = [f"{key} clipped from {old} to {new}: {bound} is {new}" for key, old, new, bound in changes if old != new]
    return PoolPlan("autoscale", {"max": new_ceiling, "min": new_floor}, None, "; ".join(notes) or None)


def _unknown(facts: WorkerFacts, consequence: str) -> Hold:
    return Hold("bounds", f"bounds: the pool size of {facts.name} is unknown (inspection did not "
                          f"report it), so {consequence}", transient=True)
