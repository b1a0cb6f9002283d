"""The guards' memory in Redis (``--state-url redis://...``): several actuator replicas act once.

Every key carries a TTL, so the state stays bounded without pruning: an idempotency key lives
``--idempotency-ttl``, a remembered pool size ``--pool-settle-time``, the sends behind cooldowns
and budgets as long as the longest of the cooldown and the hour a budget counts.

Atomicity: a claim is ``SET NX``; a release or a cancelled pool size is a compare-and-delete
script, so a request never drops what another one holds. A reservation is an optimistic
transaction (``WATCH`` the keys it reads, then ``MULTI``/``EXEC`` its writes, retried when
another request wrote any of them in between), so the check-and-record decision is the one
Python :func:`~actuator.guard_state.judge` the SQLite store runs too, and two replicas can never
both pass a cooldown or a budget.

Times are the Redis server's (``TIME``), so replicas whose clocks disagree still agree on
cooldowns and budgets.

Keys (after ``--state-key-prefix``): ``claim:<key>``; ``sends:all``, ``sends:rule:<rule>`` and
``sends:pair:["<rule>", <action>, "<worker>"]`` (sorted sets of sends, scored by time; manual
actions count under the rule ``@manual``, action null); ``pool:<worker>``; ``pause``.
"""
from __future__ import annotations

import functools
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from kombu.utils.url import maybe_sanitize_url
from redis.exceptions import RedisError, WatchError

from .guard_state import (BUDGET_WINDOW, RUNNING, Claim, Duplicate, Grant, PauseState, Refusal, Reservation,
                          Snapshot, Stale, StateStoreError, StateUnavailable, judge)

P = ParamSpec("P")
T = TypeVar("T")
REDIS_TIMEOUT = 2.0
# Optimistic transactions retried this often under contention before answering 503.
MAX_ATTEMPTS = 100
_COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _reachable(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Redis errors become :class:`StateUnavailable` (503: Alertmanager retries)."""
    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except RedisError as exc:
            store = args[0]
            raise StateUnavailable(f"guard state {store.description} unreachable: {exc}") from None
    return call


class RedisGuardState:
    def __init__(self, url: str, prefix: str, horizon: float) -> None:
        """``horizon``: how long a send must be remembered (the longest cooldown, at least the
        budget window)."""
        try:
            self._redis = aioredis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                                            socket_connect_timeout=REDIS_TIMEOUT)
        except ValueError as exc:
            raise StateStoreError(f"--state-url {maybe_sanitize_url(url)}: {exc}") from None
        self.prefix = prefix
        self.horizon = max(horizon, BUDGET_WINDOW)
        self.description = f"{maybe_sanitize_url(url)} (keys {prefix}*)"
        self._compare_and_delete = self._redis.register_script(_COMPARE_AND_DELETE)

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _sends_keys(self, request: Reservation) -> tuple[str, str, str]:
        """All sends, the rule's sends, and the rule's action's sends to this worker."""
        return (self._key("sends", "all"), self._key("sends", "rule", request.rule),
                self._key("sends", "pair", json.dumps([request.rule, request.action, request.worker])))

    @_reachable
    async def claim(self, key: str, ttl: float) -> Claim | Duplicate:
        name = self._key("claim", key)
        for _ in range(MAX_ATTEMPTS):
            token = f"{uuid.uuid4().hex} {time.time()!r}"
            if await self._redis.set(name, token, nx=True, px=max(1, int(ttl * 1000))):
                return Claim(key, token)
            held = await self._redis.get(name)
            if held is not None:  # else it expired in between: try again
                return Duplicate(key, float(held.split(b" ")[1]))
        raise StateUnavailable(f"guard state {self.description}: claim {key!r} kept changing")

    @_reachable
    async def peek(self, key: str) -> Duplicate | None:
        held = await self._redis.get(self._key("claim", key))
        return Duplicate(key, float(held.split(b" ")[1])) if held is not None else None

    @_reachable
    async def release(self, claim: Claim) -> None:
        await self._compare_and_delete(keys=[self._key("claim", claim.key)], args=[claim.token])

    @_reachable
    async def reserve(self, request: Reservation, record: bool) -> Grant | Refusal | Stale:
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(MAX_ATTEMPTS):
                try:
                    return await self._reserve(pipe, request, record)
                except WatchError:
                    continue
        raise StateUnavailable(f"guard state {self.description}: too much contention on {request.worker}")

    async def _reserve(self, pipe: Any, request: Reservation, record: bool) -> Grant | Refusal | Stale:
        sends = self._sends_keys(request)
        all_key, rule_key, pair_key = sends
        pool_key, pause_key = self._key("pool", request.worker), self._key("pause")
        await pipe.watch(*sends, pool_key, pause_key)
        seconds, microseconds = await pipe.time()
        now = seconds + microseconds / 1e6
        since = now - BUDGET_WINDOW
        last = await pipe.zrange(pair_key, -1, -1, withscores=True)
        size = await pipe.get(pool_key) if request.pool is not None else None
        snapshot = Snapshot(last[0][1] if last else None, await pipe.zcount(rule_key, since, "+inf"),
                            await pipe.zcount(all_key, since, "+inf"), int(size) if size is not None else None,
                            self._pause(await pipe.get(pause_key)))
        verdict = judge(request, snapshot, now)
        if verdict is not None or not record:
            await pipe.reset()
            return verdict or Grant(request, "")
        member = uuid.uuid4().hex
        pipe.multi()
        keep = math.ceil(self.horizon)
        for key in sends:
            pipe.zadd(key, {member: now})
            pipe.zremrangebyscore(key, "-inf", now - self.horizon)
            pipe.expire(key, keep)
        pool = request.pool
        if pool is not None and pool.after is not None:
            pipe.set(pool_key, pool.after, px=max(1, int(pool.ttl * 1000)))
        await pipe.execute()
        return Grant(request, member)

    @_reachable
    async def cancel(self, grant: Grant) -> None:
        request = grant.reservation
        if grant.id:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in self._sends_keys(request):
                    pipe.zrem(key, grant.id)
                await pipe.execute()
        if request.pool is not None and request.pool.after is not None:
            await self.forget_pool(request.worker, request.pool.after)

    @_reachable
    async def expected_pool(self, worker: str) -> int | None:
        size = await self._redis.get(self._key("pool", worker))
        return int(size) if size is not None else None

    @_reachable
    async def forget_pool(self, worker: str, size: int) -> None:
        await self._compare_and_delete(keys=[self._key("pool", worker)], args=[str(size)])

    @_reachable
    async def pause_state(self) -> PauseState:
        return self._pause(await self._redis.get(self._key("pause")))

    def _pause(self, stored: bytes | None) -> PauseState:
        """The pause key as :meth:`set_pause` wrote it; anything else there is an error that
        holds every action (503) rather than a guess."""
        if stored is None:
            return RUNNING
        try:
            fields = json.loads(stored)
        except ValueError:
            fields = None
        if (isinstance(fields, dict) and set(fields) == {"paused", "by", "at", "reason"}
                and isinstance(fields["paused"], bool) and isinstance(fields["at"], (int, float, type(None)))
                and all(isinstance(fields[key], (str, type(None))) for key in ("by", "reason"))):
            return PauseState(**fields)
        raise StateUnavailable(f"guard state {self.description}: key {self._key('pause')!r} holds "
                               f"{stored[:100]!r}, not a pause switch written by the actuator "
                               "(POST /pause or /resume rewrites it)")

    @_reachable
    async def set_pause(self, state: PauseState) -> None:
        await self._redis.set(self._key("pause"), json.dumps(vars(state)))

    async def prune(self) -> int:
        """Nothing to do: every key expires on its own."""
        return 0

    async def close(self) -> None:
        await self._redis.aclose()
