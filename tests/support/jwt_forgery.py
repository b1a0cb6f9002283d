"""JWTs signed with the test OpenID provider's own keys: valid ones, and each way to get one wrong.

A verifier of access tokens (the actuator accepting Alertmanager's ``oauth2`` tokens, issue 7) is
proven by what it refuses. The provider will not issue an expired token, one for another
audience or one signed with ``alg: none``, so this module makes them, with the very keys and
``kid`` the provider signs with (signing_keys.py): each forged token differs from a genuine one
in exactly the fault its name says.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jwt

from .signing_keys import SigningKey, generate_signing_key

# RFC 9068 media type of JWT access tokens, as oidc-provider sets it.
ACCESS_TOKEN_TYPE = "at+jwt"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_json(value: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


class TokenForge:
    """Mints tokens as ``issuer`` with ``keys``; ``clock`` is injectable for time-shift tests."""

    def __init__(self, keys: Sequence[SigningKey], issuer: str, clock: Callable[[], float] = time.time) -> None:
        self.keys = tuple(keys)
        self.issuer = issuer
        self.clock = clock

    def key_for(self, alg: str) -> SigningKey:
        for key in self.keys:
            if key.alg == alg:
                return key
        raise KeyError(f"no {alg} key among {', '.join(key.kid for key in self.keys)}")

    def claims(self, *, audience: str | list[str], subject: str, ttl: int = 300, **extra: Any) -> dict[str, Any]:
        """The registered claims of an access token from this issuer, valid for ``ttl`` seconds."""
        now = int(self.clock())
        return {"iss": self.issuer, "sub": subject, "aud": audience, "iat": now, "exp": now + ttl,
                "jti": secrets.token_urlsafe(12), "client_id": subject, **extra}

    def sign(self, claims: Mapping[str, Any], *, alg: str = "RS256", typ: str = ACCESS_TOKEN_TYPE,
             key: SigningKey | None = None) -> str:
        """A token signed exactly as the provider signs (its key, its ``kid``), unless ``key`` says otherwise."""
        key = key or self.key_for(alg)
        return jwt.encode(dict(claims), key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": typ})

    def unsigned(self, claims: Mapping[str, Any], *, kid: str | None = None) -> str:
        """``alg: none`` with an empty signature: accepted only by a verifier that lets the token
        choose its algorithm."""
        header = {"alg": "none", "typ": ACCESS_TOKEN_TYPE, **({"kid": kid} if kid else {})}
        return f"{_b64url_json(header)}.{_b64url_json(claims)}."

    def hmac_with_public_key(self, claims: Mapping[str, Any], *, alg: str = "RS256") -> str:
        """HS256 keyed with the provider's public key PEM (the algorithm-confusion attack): it
        verifies wherever the public key is used as an HMAC secret because the token said HS256.
        Made by hand, since PyJWT refuses PEM keys as HMAC secrets."""
        key = self.key_for(alg)
        signing_input = f"{_b64url_json({'alg': 'HS256', 'typ': ACCESS_TOKEN_TYPE, 'kid': key.kid})}." \
                        f"{_b64url_json(claims)}"
        signature = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64url(signature)}"

    def signed_by_stranger(self, claims: Mapping[str, Any], *, alg: str = "RS256") -> str:
        """Signed by a key the provider never had, under the provider's own ``kid``."""
        stranger = generate_signing_key(alg, kid=self.key_for(alg).kid)
        return self.sign(claims, key=stranger)

    def tampered(self, claims: Mapping[str, Any], changes: Mapping[str, Any], *, alg: str = "RS256") -> str:
        """A genuine signature over ``claims`` carrying a payload with ``changes`` applied."""
        header, _, signature = self.sign(claims, alg=alg).split(".")
        return f"{header}.{_b64url_json({**claims, **changes})}.{signature}"

    def hostile_access_tokens(self, *, audience: str, subject: str, alg: str = "RS256",
                              **extra: Any) -> dict[str, str]:
        """Every token a verifier for ``audience`` must refuse, by the name of its one fault.

        Compare ``self.sign(self.claims(audience=..., subject=...))``, which it must accept.
        """
        def claims(**changes: Any) -> dict[str, Any]:
            base = self.claims(audience=audience, subject=subject, **extra)
            return {key: value for key, value in {**base, **changes}.items() if value is not None}

        now = int(self.clock())
        return {
            "expired": self.sign(claims(iat=now - 600, exp=now - 300), alg=alg),
            "not-yet-valid": self.sign(claims(nbf=now + 300, iat=now + 300, exp=now + 600), alg=alg),
            "no-expiry": self.sign(claims(exp=None), alg=alg),
            "wrong-audience": self.sign(claims(aud=f"{audience}.evil"), alg=alg),
            "wrong-issuer": self.sign(claims(iss=f"{self.issuer}/evil"), alg=alg),
            "alg-none": self.unsigned(claims(), kid=self.key_for(alg).kid),
            "hs256-with-public-key": self.hmac_with_public_key(claims(), alg=alg),
            "unknown-signer": self.signed_by_stranger(claims(), alg=alg),
            "tampered-payload": self.tampered(claims(), {"sub": f"{subject}-admin"}, alg=alg),
        }
