"""What a login at an identity provider yields, and the pieces every provider's flow shares.

A flow (:mod:`oidc_flow`, :mod:`github_flow`) sends a person to their provider with
:meth:`begin` (keeping secrets the callback needs: state, nonce, PKCE verifier) and turns the
callback into an :class:`Identity` with :meth:`complete`, or a :class:`LoginError` saying why
not. Whether that identity may in, and as what, is decided elsewhere (email policy, roles).
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class LoginError(Exception):
    """A login that cannot complete; the message says why, without any secret."""


@dataclass(frozen=True)
class Identity:
    """A person as their provider vouches for them.

    ``emails`` are (address, verified) pairs exactly as the provider gave them, the preferred one
    first; ``verified`` is whatever the provider said (True only when it said so).
    """

    provider: str
    subject: str
    emails: tuple[tuple[str, Any], ...]
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pkce:
    """RFC 7636, S256."""

    verifier: str
    challenge: str

    @classmethod
    def fresh(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


def with_query(url: str, params: Mapping[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"


class LoginFlow(Protocol):
    name: str
    label: str

    async def begin(self, redirect_uri: str, state: str) -> tuple[str, dict[str, str]]:
        """The provider's authorization URL, and what the callback will need (kept in the session)."""

    async def complete(self, params: Mapping[str, str], kept: Mapping[str, str], redirect_uri: str) -> Identity:
        """The person the callback ``params`` prove (the state was already checked)."""
