"""Bounds and target tracking as arithmetic: what each worker is sent for a pool size."""
from __future__ import annotations

import pytest

from actuator.actions import Action
from actuator.commands import COMMANDS
from actuator.pool_bounds import Hold, PoolPlan, plan_pool
from actuator.rules import Bounds
from actuator.targets import Target
from actuator.worker_facts import WorkerFacts

WORKER = WorkerFacts("w1@host", pool="prefork", pool_processes=4)


def action(command: str, bounds: Bounds = Bounds(), **arguments) -> Action:
    spec = COMMANDS[command]
    return Action(spec=spec, arguments=spec.validate(arguments), target=Target("all"), rule="r", bounds=bounds)


@pytest.mark.parametrize(("command", "n", "bounds", "current", "expected"), [
    ("pool_grow", 3, Bounds(), 4, ("pool_grow", 3, 7, None)),
    ("pool_grow", 3, Bounds(max_pool=8), 4, ("pool_grow", 3, 7, None)),
    ("pool_grow", 6, Bounds(max_pool=8), 4, ("pool_grow", 4, 8, "n clipped from 6 to 4: pool has 4 processes, "
                                                                "max_pool is 8")),
    ("pool_shrink", 1, Bounds(min_pool=2), 4, ("pool_shrink", 1, 3, None)),
    ("pool_shrink", 5, Bounds(min_pool=2), 4, ("pool_shrink", 2, 2, "n clipped from 5 to 2: pool has 4 processes, "
                                                                  "min_pool is 2")),
    ("pool_shrink", 9, Bounds(), 4, ("pool_shrink", 9, 0, None)),
    ("pool_grow", 2, Bounds(), None, ("pool_grow", 2, None, None)),
])
def test_grow_and_shrink_are_clipped_to_the_bounds(command, n, bounds, current, expected):
    plan = plan_pool(action(command, bounds, n=n), WORKER, current)
    assert isinstance(plan, PoolPlan)
    assert (plan.command, plan.arguments["n"], plan.size_after, plan.note) == expected


@pytest.mark.parametrize(("command", "bounds", "current", "fragment"), [
    ("pool_grow", Bounds(max_pool=4), 4, "pool of w1@host has 4 processes and max_pool is 4: grow by 1 clipped to 0"),
    ("pool_grow", Bounds(max_pool=4), 6, "has 6 processes and max_pool is 4"),
    ("pool_shrink", Bounds(min_pool=4), 4, "min_pool is 4: shrink by 1 clipped to 0"),
    ("pool_grow", Bounds(max_pool=4), None, "pool size of w1@host is unknown"),
])
def test_clipped_to_nothing_is_held_with_the_numbers(command, bounds, current, fragment):
    plan = plan_pool(action(command, bounds), WORKER, current)
    assert isinstance(plan, Hold) and plan.guard == "bounds" and fragment in plan.reason


@pytest.mark.parametrize(("size", "current", "expected"), [
    (10, 2, ("pool_grow", {"n": 6})),     # queue length 1000, 100 per process, capped at 8
    (0, 8, ("pool_shrink", {"n": 6})),    # empty queue: down to min_pool 2
    (5, 3, ("pool_grow", {"n": 2})),
    (4, 6, ("pool_shrink", {"n": 2})),
])
def test_pool_target_moves_by_the_difference_within_the_bounds(size, current, expected):
    plan = plan_pool(action("pool_target", Bounds(max_pool=8, min_pool=2), size=size), WORKER, current)
    assert isinstance(plan, PoolPlan) and (plan.command, dict(plan.arguments)) == expected
    assert plan.size_after == min(max(size, 2), 8)


def test_pool_target_at_target_is_held():
    plan = plan_pool(action("pool_target", Bounds(max_pool=8, min_pool=2), size=12), WORKER, 8)
    assert plan == Hold("at_target", "at target: pool of w1@host has 8 processes; "
                                     "target 8 (size 12 within min_pool 2, max_pool 8)")


def test_pool_target_on_an_autoscaling_worker_sets_the_ceiling():
    autoscaling = WorkerFacts("w2@host", pool="prefork", pool_processes=3,
                              autoscaler={"max": 4, "min": 3, "current": 3, "qty": 0})
    target = action("pool_target", Bounds(max_pool=8, min_pool=2), size=2)
    plan = plan_pool(target, autoscaling, 3)
    assert isinstance(plan, PoolPlan) and (plan.command, dict(plan.arguments)) == ("autoscale", {"max": 2, "min": 2})
    assert plan.size_after is None
    held = plan_pool(action("pool_target", Bounds(max_pool=8, min_pool=2), size=4), autoscaling, 3)
    assert isinstance(held, Hold) and held.guard == "at_target"
