"""Bounds and target tracking as arithmetic: what each worker is sent for a pool size."""
from __future__ import annotations

import pytest

from actuator.actions import Action
from actuator.commands import COMMANDS
from actuator.pool_bounds import Hold, PoolPlan, PoolSize, plan_pool
from actuator.rules import Bounds, Limits
from actuator.targets import Target
from actuator.worker_facts import WorkerFacts

WORKER = WorkerFacts("w1@host", pool="prefork", pool_processes=4)
AUTOSCALING = WorkerFacts("w2@host", pool="prefork", pool_processes=3,
                          autoscaler={"max": 4, "min": 3, "current": 3, "qty": 0})


def action(command: str, bounds: Bounds = Bounds(), direction: str = "both", **arguments) -> Action:
    spec = COMMANDS[command]
    return Action(spec=spec, arguments=spec.validate(arguments), target=Target("all"), rule="r", bounds=bounds,
                  direction=direction)


def plan(command: str, pool: PoolSize | int | None, bounds: Bounds = Bounds(), facts: WorkerFacts = WORKER,
         **arguments) -> PoolPlan | Hold:
    pool = pool if isinstance(pool, PoolSize) else PoolSize(pool)
    return plan_pool(action(command, bounds, **arguments), facts, pool, bounds)


@pytest.mark.parametrize(("command", "n", "bounds", "current", "expected"), [
    ("pool_grow", 3, Bounds(), 4, ("pool_grow", 3, 7, None)),
    ("pool_grow", 3, Bounds(max_pool=8), 4, ("pool_grow", 3, 7, None)),
    ("pool_grow", 6, Bounds(max_pool=8), 4, ("pool_grow", 4, 8, "n clipped from 6 to 4: pool has 4 processes, "
                                                                "max_pool is 8")),
    ("pool_shrink", 1, Bounds(min_pool=2), 4, ("pool_shrink", 1, 3, None)),
    ("pool_shrink", 5, Bounds(min_pool=2), 4, ("pool_shrink", 2, 2, "n clipped from 5 to 2: pool has 4 processes, "
                                                                  "min_pool is 2")),
    # Without min_pool a pool still keeps one process: billiard would stop every idle one.
    ("pool_shrink", 9, Bounds(), 4, ("pool_shrink", 3, 1, "n clipped from 9 to 3: pool has 4 processes, "
                                                          "a pool keeps at least 1 process")),
    ("pool_grow", 2, Bounds(), None, ("pool_grow", 2, None, None)),
])
def test_grow_and_shrink_are_clipped_to_the_bounds(command, n, bounds, current, expected):
    planned = plan(command, current, bounds, n=n)
    assert isinstance(planned, PoolPlan)
    assert (planned.command, planned.arguments["n"], planned.size_after, planned.note) == expected


@pytest.mark.parametrize(("command", "bounds", "current", "fragment", "transient"), [
    ("pool_grow", Bounds(max_pool=4), 4, "pool of w1@host has 4 processes and max_pool is 4: grow by 1 clipped to 0",
     False),
    ("pool_grow", Bounds(max_pool=4), 6, "has 6 processes and max_pool is 4", False),
    ("pool_shrink", Bounds(min_pool=4), 4, "min_pool is 4: shrink by 1 clipped to 0", False),
    ("pool_shrink", Bounds(), 1, "has 1 processes and a pool keeps at least 1 process: shrink by 1 clipped to 0",
     False),
    ("pool_grow", Bounds(max_pool=4), None, "pool size of w1@host is unknown", True),
    ("pool_shrink", Bounds(), None, "unknown (inspection did not report it), so a shrink could leave fewer than 1",
     True),
])
def test_clipped_to_nothing_is_held_with_the_numbers(command, bounds, current, fragment, transient):
    held = plan(command, current, bounds)
    assert isinstance(held, Hold) and held.guard == "bounds" and fragment in held.reason
    assert held.transient is transient


def test_grows_count_from_the_larger_size_and_shrinks_from_the_smaller():
    """Live inspection 2, remembered 8 (a grow not started yet, or a memory gone stale): neither
    may overshoot."""
    size = PoolSize(live=2, remembered=8)
    grow = plan("pool_grow", size, Bounds(max_pool=10), n=5)
    assert (grow.command, dict(grow.arguments), grow.size_after) == ("pool_grow", {"n": 2}, 10)
    assert grow.note == ("n clipped from 5 to 2: pool has 8 processes (live inspection 2, 8 asked for moments ago), "
                         "max_pool is 10")
    shrink = plan("pool_shrink", size, Bounds(min_pool=1), n=6)
    assert (shrink.command, dict(shrink.arguments), shrink.size_after) == ("pool_shrink", {"n": 1}, 1)
    held = plan("pool_shrink", PoolSize(live=2, remembered=8), Bounds(min_pool=2), n=6)
    assert isinstance(held, Hold) and "has 2 processes (live inspection 2, 8 asked for" in held.reason


@pytest.mark.parametrize(("size", "current", "expected"), [
    (10, 2, ("pool_grow", {"n": 6})),     # queue length 1000, 100 per process, capped at 8
    (0, 8, ("pool_shrink", {"n": 6})),    # empty queue: down to min_pool 2
    (5, 3, ("pool_grow", {"n": 2})),
    (4, 6, ("pool_shrink", {"n": 2})),
])
def test_pool_target_moves_by_the_difference_within_the_bounds(size, current, expected):
    planned = plan("pool_target", current, Bounds(max_pool=8, min_pool=2), size=size)
    assert isinstance(planned, PoolPlan) and (planned.command, dict(planned.arguments)) == expected
    assert planned.size_after == min(max(size, 2), 8)


def test_pool_target_at_target_is_held():
    held = plan("pool_target", 8, Bounds(max_pool=8, min_pool=2), size=12)
    assert held == Hold("at_target", "at target: pool of w1@host has 8 processes; "
                                     "target 8 (size 12 within min_pool 2, max_pool 8)")


@pytest.mark.parametrize(("direction", "current", "expected"), [
    ("up", 2, ("pool_grow", {"n": 3})), ("up", 7, "at least the target 5"),
    ("down", 7, ("pool_shrink", {"n": 2})), ("down", 2, "at most the target 5"),
    ("both", 2, ("pool_grow", {"n": 3})), ("both", 7, ("pool_shrink", {"n": 2})),
])
def test_pool_target_moves_only_its_direction(direction, current, expected):
    planned = plan("pool_target", current, Bounds(max_pool=8, min_pool=2), size=5, direction=direction)
    if isinstance(expected, tuple):
        assert isinstance(planned, PoolPlan) and (planned.command, dict(planned.arguments)) == expected
    else:
        assert isinstance(planned, Hold) and planned.guard == "at_target" and not planned.transient
        assert expected in planned.reason and f"direction: {direction} only" in planned.reason


def test_pool_target_waits_while_the_pool_settles_around_the_target():
    held = plan("pool_target", PoolSize(live=2, remembered=8), Bounds(max_pool=10, min_pool=2), size=5)
    assert isinstance(held, Hold) and held.transient and held.guard == "bounds"
    assert "settling: live inspection shows 2 processes, 8 were asked for" in held.reason
    # Outside that range it acts, counting from the cautious end.
    above = plan("pool_target", PoolSize(live=2, remembered=8), Bounds(max_pool=10, min_pool=1), size=10)
    assert (above.command, dict(above.arguments)) == ("pool_grow", {"n": 2})
    below = plan("pool_target", PoolSize(live=3, remembered=8), Bounds(max_pool=10, min_pool=2), size=2)
    assert (below.command, dict(below.arguments)) == ("pool_shrink", {"n": 1})


@pytest.mark.parametrize(("size", "direction", "expected"), [
    (6, "both", {"max": 6, "min": 3}),
    (2, "both", {"max": 3, "min": 3}),   # never below the autoscaler's floor: the ceiling stops at it
    (6, "down", "direction: down only shrinks"),
    (2, "up", "direction: up only grows"),
    (4, "both", "has max 4"),
])
def test_pool_target_on_an_autoscaling_worker_sets_the_ceiling(size, direction, expected):
    planned = plan("pool_target", 3, Bounds(max_pool=8, min_pool=1), facts=AUTOSCALING, size=size,
                   direction=direction)
    if isinstance(expected, dict):
        assert isinstance(planned, PoolPlan) and (planned.command, dict(planned.arguments)) == ("autoscale", expected)
        assert planned.size_after is None
    else:
        assert isinstance(planned, Hold) and planned.guard == "at_target" and expected in planned.reason


def test_autoscale_is_clipped_to_the_bounds():
    bounds = Limits(max_pool=6, min_pool=2).bound(Bounds())
    planned = plan("autoscale", 3, bounds, facts=AUTOSCALING, max=10, min=0)
    assert (planned.command, dict(planned.arguments)) == ("autoscale", {"max": 6, "min": 2})
    assert planned.note == "max clipped from 10 to 6: max_pool is 6; min clipped from 0 to 2: min_pool is 2"
    assert plan("autoscale", 3, Bounds(), facts=AUTOSCALING, max=10, min=0).note is None


def test_limits_narrow_an_actions_bounds():
    limits = Limits(max_pool=6, min_pool=2)
    assert limits.bound(Bounds()) == Bounds(max_pool=6, min_pool=2)
    assert limits.bound(Bounds(max_pool=4, min_pool=3)) == Bounds(max_pool=4, min_pool=3)
    assert Limits().bound(Bounds(max_pool=4)) == Bounds(max_pool=4)
