"""Who may read the exporter's pages, from a web config: basic auth with bcrypt hashes, response
headers and a rate limit, as aiohttp middlewares.

bcrypt is slow on purpose (tens to hundreds of milliseconds a check), and Prometheus sends the same
credentials every scrape, so successful checks are remembered, as exporter-toolkit does. The
cache is keyed by an HMAC of user, hash and password under a key made at start, so it holds no
password and its lookups reveal nothing; failures are never cached, so every guess pays for a
bcrypt check. A user that does not exist is checked against a dummy hash of the same cost, so the
answer time does not tell which users exist. Checks run one at a time on a thread of their own:
a flood of wrong passwords costs one core, never blocks the event loop, and cached (correct)
credentials skip the queue.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import bcrypt
from aiohttp import web

from .web_config import RateLimit, WebConfig

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CACHE_SIZE = 100
REALM = "celery-autopilot exporter"


class BasicAuth:
    def __init__(self, users: Mapping[str, bytes], cache_size: int = CACHE_SIZE) -> None:
        self._users = dict(users)
        cost = max(int(hashed.split(b"$")[2]) for hashed in self._users.values())
        self._dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(cost))
        self._key = os.urandom(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bcrypt")

    async def user(self, authorization: str | None) -> str | None:
        """The user the ``Authorization`` header proves, or None."""
        scheme, _, encoded = (authorization or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user_bytes, separator, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
            user = user_bytes.decode()
        except (binascii.Error, ValueError):
            return None
        if not separator:
            return None
        hashed = self._users.get(user)
        key = hmac.new(self._key, b"\0".join((user_bytes, hashed or b"", password)), hashlib.sha256).digest()
        if hashed is not None and key in self._verified:
            self._verified.move_to_end(key)
            return user
        loop = asyncio.get_running_loop()
        matches = await loop.run_in_executor(self._executor, bcrypt.checkpw, password, hashed or self._dummy)
        if not (matches and hashed is not None):
            return None
        self._verified[key] = None
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return user


class TokenBucket:
    """``burst`` requests at once, then one per ``interval`` seconds (Go's rate.Limiter)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._tokens = float(limit.burst)
        self._updated = clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self.limit.burst, self._tokens + (now - self._updated) / self.limit.interval)
        self._updated = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def middlewares(config: WebConfig, open_paths: frozenset[str]) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
    """The middlewares ``config`` asks for, outermost first; ``open_paths`` need no credentials."""
    chain = []
    if config.rate_limit is not None:
        chain.append(_rate_limited(TokenBucket(config.rate_limit)))
    if config.basic_auth_users:
        chain.append(_authenticated(BasicAuth(config.basic_auth_users), open_paths))
    return chain


def header_setter(headers: Mapping[str, str]) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An ``on_response_prepare`` hook adding ``headers`` to every answer.

    A signal rather than a middleware: ``/metrics`` streams its body, so its headers are sent
    before the handler returns and a middleware would come too late.
    """
    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(headers)
    return add_headers


def _rate_limited(bucket: TokenBucket) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not bucket.allow():
            return web.Response(status=429, text="Too Many Requests\n")
        return await handler(request)
    return rate_limit


def _authenticated(auth: BasicAuth, open_paths: frozenset[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in open_paths:
            return await handler(request)
        user = await auth.user(request.headers.get("Authorization"))
        if user is None:
            log.warning("401 %s %s from %s: %s", request.method, request.path, request.remote,
                        "bad credentials" if "Authorization" in request.headers else "no credentials")
            return web.Response(status=401, text="Unauthorized\n",
                                headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})
        log.debug("%s %s by %s", request.method, request.path, user)
        return await handler(request)
    return basic_auth
