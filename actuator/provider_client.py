"""HTTP calls to identity providers (discovery, JWKS, token endpoints, GitHub's API).

One aiohttp client session for the whole service, opened on first use, trusting the system's CAs
or ``--provider-ca-file``. Every failure becomes a :class:`ProviderError` naming the URL and what
went wrong, never the credentials or tokens that were sent.
"""
from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp

PROVIDER_TIMEOUT = 10.0
MAX_RESPONSE_BYTES = 1024 * 1024


class ProviderError(RuntimeError):
    """An identity provider could not be reached, or answered with an error."""


class ProviderClient:
    def __init__(self, ca_file: Path | None = None, timeout: float = PROVIDER_TIMEOUT) -> None:
        self._ssl = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout,
                                                  connector=aiohttp.TCPConnector(ssl=self._ssl),
                                                  headers={"Accept": "application/json",
                                                           "User-Agent": "celery-autopilot-actuator"})
        return self._session

    async def get_json(self, url: str, *, headers: dict[str, str] | None = None) -> Any:
        return await self._call("GET", url, headers=headers)

    async def post_form(self, url: str, form: dict[str, str], *, auth: aiohttp.BasicAuth | None = None,
                        ) -> Any:
        return await self._call("POST", url, data=form, auth=auth)

    async def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            async with self._client().request(method, url, allow_redirects=False, **kwargs) as response:
                body = await response.content.read(MAX_RESPONSE_BYTES + 1)
                if len(body) > MAX_RESPONSE_BYTES:
                    raise ProviderError(f"{method} {url}: answer larger than {MAX_RESPONSE_BYTES} bytes")
                try:
                    document = json.loads(body.decode("utf-8"))
                except ValueError:
                    raise ProviderError(f"{method} {url} answered {response.status} with a body that is "
                                        f"not JSON") from None
                if response.status >= 400:
                    raise ProviderError(f"{method} {url} answered {response.status}: {_oauth_error(document)}")
                return document
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            raise ProviderError(f"{method} {url}: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _oauth_error(document: Any) -> str:
    """The OAuth error code and description, if the answer is one (RFC 6749 §5.2)."""
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        description = document.get("error_description")
        return document["error"] + (f" ({description})" if isinstance(description, str) else "")
    return "an error"
