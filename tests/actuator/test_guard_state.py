"""Both guard-state stores, the embedded SQLite file and Redis (the session's private redis-server),
held to the same contract: atomic claims, cooldowns and budgets that concurrent requests (and,
for Redis, separate clients standing in for replicas) cannot both pass, pause, expiry."""
from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable

import pytest

from actuator.guard_state import (MANUAL_KEY, Claim, Duplicate, Grant, GuardState, PauseState, PoolExpectation,
                                  Refusal, Reservation, Stale, StateUnavailable)
from actuator.state_redis import RedisGuardState
from actuator.state_sqlite import SqliteGuardState
from tests.support.polling import wait_for_async
from tests.support.redis_server import RedisServer

Opener = Callable[[], GuardState]


@pytest.fixture(params=["sqlite", "redis"])
async def open_state(request, tmp_path, redis_server: RedisServer) -> AsyncIterator[Opener]:
    """Opens stores on one shared place: two of them are two replicas (or a restart)."""
    url = redis_server.fresh_url()
    opened: list[GuardState] = []

    def open_one() -> GuardState:
        state: GuardState = (SqliteGuardState(tmp_path / "state.sqlite3", horizon=0) if request.param == "sqlite"
                             else RedisGuardState(url, "test:", horizon=0))
        opened.append(state)
        return state

    yield open_one
    for state in opened:
        await state.close()


async def test_a_key_is_claimed_once_until_released_or_expired(open_state):
    state = open_state()
    first = await state.claim("k", ttl=60)
    assert isinstance(first, Claim)
    again = await state.claim("k", ttl=60)
    assert isinstance(again, Duplicate) and abs(again.claimed_at - time.time()) < 5
    assert await state.peek("k") == again and await state.peek("other") is None
    # Releasing needs the claim's own token: a stale holder cannot drop someone else's claim.
    await state.release(Claim("k", "not-the-token"))
    assert isinstance(await state.claim("k", ttl=60), Duplicate)
    await state.release(first)
    assert isinstance(await state.claim("k", ttl=1), Claim)

    async def claimed_again() -> bool:
        return isinstance(await state.claim("k", ttl=1), Claim)
    await wait_for_async(claimed_again, timeout=5, what="a claim with a 1 s TTL to expire")


async def test_concurrent_claims_of_one_key_have_one_winner(open_state):
    replicas = [open_state(), open_state()]
    results = await asyncio.gather(*(replicas[i % 2].claim("same", ttl=60) for i in range(200)))
    assert sum(isinstance(r, Claim) for r in results) == 1


async def test_cooldown_per_rule_action_and_worker(open_state):
    state = open_state()
    request = Reservation("grow", "w1", action=1, cooldown=1.0)
    assert isinstance(await state.reserve(request, record=True), Grant)
    refused = await state.reserve(request, record=True)
    assert isinstance(refused, Refusal) and refused.guard == "cooldown"
    assert "rule 'grow' (action 1) acted on w1" in refused.reason and "cooldown 1s" in refused.reason
    # Another worker, another rule, the rule's next action: their own cooldowns.
    assert isinstance(await state.reserve(Reservation("grow", "w2", action=1, cooldown=1.0), record=True), Grant)
    assert isinstance(await state.reserve(Reservation("other", "w1", action=1, cooldown=1.0), record=True), Grant)
    assert isinstance(await state.reserve(Reservation("grow", "w1", action=2, cooldown=1.0), record=True), Grant)

    async def granted() -> bool:
        return isinstance(await state.reserve(request, record=True), Grant)
    await wait_for_async(granted, timeout=5, what="the 1 s cooldown to expire")


async def test_rule_and_global_budgets(open_state):
    state = open_state()
    rule_a = [Reservation("a", f"w{i}", rule_budget=2, global_budget=3) for i in range(3)]
    outcomes = [await state.reserve(r, record=True) for r in rule_a]
    assert [type(o) for o in outcomes] == [Grant, Grant, Refusal]
    assert outcomes[2].reason == "budget: rule 'a' took 2 actions in the last hour; its max_actions_per_hour is 2"
    assert isinstance(await state.reserve(Reservation("b", "w0", global_budget=3), record=True), Grant)
    refused = await state.reserve(Reservation("c", "w0", global_budget=3), record=True)
    assert refused == Refusal("budget", "budget: 3 actions in the last hour (all rules and manual actions); "
                                        "limits.max_actions_per_hour is 3")


async def test_manual_actions_count_toward_the_global_budget_only(open_state):
    state = open_state()
    manual = Reservation(MANUAL_KEY, "w1", global_budget=3)
    assert [type(await state.reserve(manual, record=True)) for _ in range(2)] == [Grant, Grant]
    assert isinstance(await state.reserve(Reservation("rule", "w1", action=1, cooldown=60, global_budget=3), True),
                      Grant)
    assert (await state.reserve(manual, record=True)).guard == "budget"
    assert (await state.reserve(Reservation("other", "w2", action=1, global_budget=3), True)).guard == "budget"


async def test_a_pause_holds_a_reservation_in_the_same_step(open_state):
    """A pause that lands while an action resolves its targets still stops its command."""
    state = open_state()
    await state.set_pause(PauseState(True, "basic:admin", time.time(), "deploy"))
    refused = await state.reserve(Reservation("r", "w1", action=1), record=True)
    assert isinstance(refused, Refusal) and refused.guard == "paused" and "deploy" in refused.reason
    await state.set_pause(PauseState(False, "basic:admin", time.time()))
    assert isinstance(await state.reserve(Reservation("r", "w1", action=1), record=True), Grant)


async def test_concurrent_reservations_never_exceed_a_budget(open_state):
    """Two stores on one place (two replicas), 60 reservations at once, a budget of 5."""
    replicas = [open_state(), open_state()]
    requests = [Reservation("burst", f"w{i}", rule_budget=5) for i in range(60)]
    outcomes = await asyncio.gather(*(replicas[i % 2].reserve(r, record=True) for i, r in enumerate(requests)))
    assert sum(isinstance(o, Grant) for o in outcomes) == 5
    assert all(o.guard == "budget" for o in outcomes if isinstance(o, Refusal))


async def test_dry_run_checks_without_recording(open_state):
    state = open_state()
    request = Reservation("r", "w1", cooldown=60, rule_budget=1)
    assert isinstance(await state.reserve(request, record=False), Grant)
    assert isinstance(await state.reserve(request, record=False), Grant)  # nothing was recorded
    assert isinstance(await state.reserve(request, record=True), Grant)
    refused = await state.reserve(request, record=False)
    assert isinstance(refused, Refusal) and refused.guard == "cooldown"  # what a live run would meet


async def test_cancel_takes_a_grant_back(open_state):
    state = open_state()
    request = Reservation("r", "w1", cooldown=60, rule_budget=1,
                          pool=PoolExpectation(seen=None, after=5, ttl=60))
    grant = await state.reserve(request, record=True)
    assert isinstance(grant, Grant) and await state.expected_pool("w1") == 5
    await state.cancel(grant)
    assert await state.expected_pool("w1") is None
    assert isinstance(await state.reserve(request, record=True), Grant)


async def test_pool_expectation_is_compared_and_set(open_state):
    state = open_state()
    first = Reservation(MANUAL_KEY, "w1", pool=PoolExpectation(seen=None, after=4, ttl=60))
    assert isinstance(await state.reserve(first, record=True), Grant)
    # A plan made before that grant (it saw nothing remembered) is stale now.
    assert isinstance(await state.reserve(first, record=True), Stale)
    assert isinstance(await state.reserve(Reservation(MANUAL_KEY, "w1", pool=PoolExpectation(4, 6, 60)), True), Grant)
    await state.forget_pool("w1", 5)  # not what is remembered: kept
    assert await state.expected_pool("w1") == 6
    await state.forget_pool("w1", 6)
    assert await state.expected_pool("w1") is None
    assert isinstance(await state.reserve(Reservation(MANUAL_KEY, "w2", pool=PoolExpectation(None, 3, 0.2)), True),
                      Grant)

    async def forgotten() -> bool:
        return await state.expected_pool("w2") is None
    await wait_for_async(forgotten, timeout=5, what="a remembered pool size to expire")


async def test_pause_is_shared_and_survives_reopening(open_state):
    first = open_state()
    assert (await first.pause_state()).paused is False
    await first.set_pause(PauseState(True, "basic:admin", time.time(), "deploy"))
    await first.close()
    second = open_state()
    state = await second.pause_state()
    assert (state.paused, state.by, state.reason) == (True, "basic:admin", "deploy")
    await second.set_pause(PauseState(False, "basic:admin", time.time()))
    assert (await second.pause_state()).paused is False


async def test_prune_drops_what_expired(tmp_path):
    state = SqliteGuardState(tmp_path / "state.sqlite3", horizon=0)
    try:
        await state.claim("short", ttl=0.05)
        await state.claim("long", ttl=60)
        await state.reserve(Reservation(MANUAL_KEY, "w1", pool=PoolExpectation(None, 2, 0.05)), record=True)

        async def expired() -> bool:
            return await state.peek("short") is None
        await wait_for_async(expired, timeout=5, what="a 50 ms claim to expire")
        assert await state.prune() == 2
        assert await state.peek("long") is not None
    finally:
        await state.close()


async def test_a_foreign_value_in_the_redis_pause_key_is_a_clear_error(redis_server: RedisServer):
    url = redis_server.fresh_url()
    state = RedisGuardState(url, "test:", horizon=0)
    try:
        redis_server.client(int(url.rsplit("/", 1)[1])).set("test:pause", b"yes please")
        with pytest.raises(StateUnavailable, match=r"key 'test:pause' holds b'yes please', not a pause switch"):
            await state.pause_state()
        with pytest.raises(StateUnavailable, match="not a pause switch"):
            await state.reserve(Reservation("r", "w1"), record=True)
        await state.set_pause(PauseState(False, "basic:admin", time.time()))
        assert (await state.pause_state()).paused is False
    finally:
        await state.close()


async def test_a_state_file_from_before_per_action_cooldowns_keeps_its_sends(tmp_path):
    """Sends recorded before cooldowns were per action hold every action of their rule."""
    path = tmp_path / "state.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE sends (id INTEGER PRIMARY KEY, at REAL NOT NULL, rule TEXT NOT NULL, worker TEXT NOT NULL);
    """)
    old.execute("INSERT INTO sends (at, rule, worker) VALUES (?, 'grow', 'w1')", (time.time(),))
    old.commit()
    old.close()
    state = SqliteGuardState(path, horizon=0)
    try:
        refused = await state.reserve(Reservation("grow", "w1", action=2, cooldown=60), record=True)
        assert isinstance(refused, Refusal) and refused.guard == "cooldown"
        assert isinstance(await state.reserve(Reservation("grow", "w2", action=2, cooldown=60), True), Grant)
    finally:
        await state.close()
