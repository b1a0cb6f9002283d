"""Slowing down password guessing: a token bucket of failed attempts per client address and per
user name.

Each failure takes a token from the bucket of the address it came from and from the bucket of the
user name it tried (if any); an empty bucket refuses further attempts (429, ``Retry-After``)
until a token comes back, one every ``interval`` seconds, up to ``burst``. Successes cost nothing,
so Prometheus and Alertmanager with the right credentials are never slowed, while a guesser gets
``burst`` tries and then one per interval, from any number of addresses for one user, or for any
number of users from one address. Memory is bounded: at most ``max_keys`` buckets are kept, the
least recently used going first (a full bucket holds no information anyway).
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .settings import ThrottleSettings

MAX_KEYS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class LoginThrottle:
    def __init__(self, settings: ThrottleSettings, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self.settings = settings
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _level(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            return _Bucket(float(self.settings.burst), now)
        bucket.tokens = min(self.settings.burst, bucket.tokens + (now - bucket.updated) / self.settings.interval)
        bucket.updated = now
        return bucket

    def retry_after(self, keys: Iterable[str]) -> float | None:
        """Seconds until an attempt under ``keys`` may be tried again, or None if it may now."""
        now = self._clock()
        waits = [(1 - bucket.tokens) * self.settings.interval
                 for key in keys if key in self._buckets and (bucket := self._level(key, now)).tokens < 1]
        return max(waits) if waits else None

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        for key in keys:
            bucket = self._level(key, now)
            bucket.tokens = max(0.0, bucket.tokens - 1)
            self._buckets[key] = bucket
            self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)


def throttle_keys(address: str | None, user: str | None) -> list[str]:
    keys = [f"address:{address or 'unknown'}"]
    if user:
        keys.append(f"user:{user}")
    return keys
