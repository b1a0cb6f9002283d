"""An OpenID provider's metadata, from its discovery document (OpenID Connect Discovery 1.0).

Fetched on first use rather than at start, so an actuator whose provider is briefly down still
starts and serves Alertmanager; a failed fetch is tried again on the next login. The document's
``issuer`` must be exactly the URL it was fetched under minus the well-known suffix (§4.3): a
document that names another issuer is refused, so nobody can point the actuator at a look-alike.
"""
from __future__ import annotations

import asyncio
from typing import Any

from .provider_client import ProviderClient, ProviderError

WELL_KNOWN = "/.well-known/openid-configuration"
REQUIRED = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")


def discovery_url(url: str) -> str:
    """A discovery URL, given it or the issuer it belongs to."""
    url = url.rstrip("/") if not url.endswith(WELL_KNOWN) else url
    return url if url.endswith(WELL_KNOWN) else url + WELL_KNOWN


def issuer_of(url: str) -> str:
    return discovery_url(url)[:-len(WELL_KNOWN)]


class Discovery:
    def __init__(self, url: str, client: ProviderClient) -> None:
        self.url = discovery_url(url)
        self.issuer = issuer_of(url)
        self._client = client
        self._metadata: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def metadata(self) -> dict[str, Any]:
        async with self._lock:
            if self._metadata is None:
                self._metadata = self._checked(await self._client.get_json(self.url))
            return self._metadata

    async def endpoint(self, name: str) -> str:
        value = (await self.metadata()).get(name)
        if not isinstance(value, str) or not value:
            raise ProviderError(f"{self.url}: the provider's metadata has no {name}")
        return value

    def _checked(self, document: Any) -> dict[str, Any]:
        if not isinstance(document, dict):
            raise ProviderError(f"{self.url}: expected a JSON object")
        for key in REQUIRED:
            if not isinstance(document.get(key), str) or not document[key]:
                raise ProviderError(f"{self.url}: the discovery document has no {key}")
        if document["issuer"] != self.issuer:
            raise ProviderError(f"{self.url}: the discovery document names issuer {document['issuer']!r}, "
                                f"not {self.issuer!r}")
        return document
