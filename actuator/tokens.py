"""Verifying signed JWTs from a provider: machines' access tokens and people's ID tokens.

A token is accepted only when all of these hold, in this order (the first that fails is the
reason given):

- its header names an algorithm among those pinned (configured, or what discovery says the
  provider signs with), never ``none`` and never an HMAC one (an HMAC "signature" keyed with
  the provider's *public* key is the classic algorithm-confusion forgery);
- its ``kid`` is a key the provider publishes (JWKS, refreshed on an unknown kid, rate-limited),
  of a type that fits the algorithm (and the key's own ``alg``, when it has one);
- the signature verifies with that key;
- ``iss`` is the issuer, ``aud`` holds the audience, ``exp`` and ``iat`` are present and
  current (30 s of leeway for clocks), ``nbf`` is past if present.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jwt

from .jwks import JwksCache

# Algorithms a provider may sign with: asymmetric only.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                         "EdDSA")
LEEWAY_SECONDS = 30
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud")


class TokenError(ValueError):
    """The token is refused; the message says why (never the token itself)."""


def pinned(algorithms: Iterable[str]) -> tuple[str, ...]:
    """The asymmetric algorithms among ``algorithms``; ValueError naming any other."""
    chosen = tuple(dict.fromkeys(algorithms))
    refused = [alg for alg in chosen if alg not in ASYMMETRIC_ALGORITHMS]
    if refused:
        raise ValueError(f"{', '.join(refused)}: expected asymmetric algorithms among "
                         f"{', '.join(ASYMMETRIC_ALGORITHMS)} (never none or HMAC)")
    if not chosen:
        raise ValueError("no algorithm given")
    return chosen


class TokenVerifier:
    def __init__(self, issuer: str, audience: str, algorithms: tuple[str, ...], jwks: JwksCache) -> None:
        self.issuer = issuer
        self.audience = audience
        self.algorithms = pinned(algorithms)
        self.jwks = jwks

    async def verify(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``; TokenError saying why not (ProviderError when the
        provider's keys cannot be fetched)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("not a signed JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise TokenError(f"algorithm {alg!r} is not accepted (pinned to {', '.join(self.algorithms)})")
        data = await self.jwks.key(header.get("kid"))
        if data is None:
            raise TokenError(f"key id {header.get('kid')!r} is not among the issuer's published keys")
        if data.get("alg", alg) != alg:
            raise TokenError(f"key {header.get('kid')!r} is published for {data.get('alg')!r}, not {alg!r}")
        try:
            key = jwt.PyJWK(data, algorithm=alg)
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            raise TokenError(f"key {header.get('kid')!r} ({data.get('kty')}) cannot verify {alg}") from None
        try:
            return jwt.decode(token, key.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                              leeway=LEEWAY_SECONDS, options={"require": list(REQUIRED_CLAIMS)})
        except jwt.PyJWTError as exc:
            raise TokenError(f"{type(exc).__name__}: {exc}") from None

