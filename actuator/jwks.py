"""A provider's signing keys (its JWKS), cached, refreshed when a token names a key not yet seen.

Providers rotate keys by publishing the new one before signing with it, so a token whose ``kid``
is unknown is the signal to fetch the set again. That refresh is rate-limited (at most one per
``min_refresh_interval`` seconds): a stream of tokens with made-up key ids must not turn the
actuator into a load generator against the provider. Only signature keys are kept (``use`` absent
or ``sig``).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt

from .provider_client import ProviderClient, ProviderError

log = logging.getLogger(__name__)
MIN_REFRESH_INTERVAL = 30.0


class JwksCache:
    """``url`` is awaited on each fetch (it may come from discovery, itself fetched lazily)."""

    def __init__(self, client: ProviderClient, url: Callable[[], Awaitable[str]],
                 min_refresh_interval: float = MIN_REFRESH_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._url = url
        self._min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: Any) -> dict[str, Any] | None:
        """The published key ``kid`` (its JWK), fetching the set when it is unknown (rate-limited)."""
        if not isinstance(kid, str):
            return None
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and self._may_fetch():
                await self._fetch()
        return self._keys.get(kid)

    def _may_fetch(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._min_refresh_interval

    async def _fetch(self) -> None:
        self._fetched_at = self._clock()
        self.fetches += 1
        url = await self._url()
        document = await self._client.get_json(url)
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise ProviderError(f"{url}: expected a JWK set ({{\"keys\": [...]}})")
        found: dict[str, dict[str, Any]] = {}
        for data in keys:
            if not isinstance(data, dict) or data.get("use", "sig") != "sig" or not isinstance(data.get("kid"), str):
                continue
            try:
                jwt.PyJWK(data)
            except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
                log.warning("%s: skipping key %r: %s", url, data["kid"], exc)
                continue
            found[data["kid"]] = data
        self._keys = found
        log.info("fetched %d signing keys from %s", len(found), url)
