"""Signing keys made by the tests and handed to the OpenID provider they start.

Generating the provider's keys here instead of letting it make its own means Python holds the
private halves too: tests/support/jwt_forgery.py signs tokens with them that the provider would
never issue (expired, wrong audience, ...), indistinguishable from its own except for that one
fault. Used by oidc_provider.py (the provider's JWKS) and by tests verifying tokens.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

# The algorithms a provider signs with by default: RS256 is what OpenID Connect requires every
# provider to support for ID tokens; ES256 is the common smaller alternative for access tokens.
ALGORITHMS = ("RS256", "ES256")


@dataclass(frozen=True)
class SigningKey:
    """One key of the provider's JWKS: its ``kid``, the one algorithm it signs with, and both halves."""

    kid: str
    alg: str
    private_key: PrivateKeyTypes

    @property
    def public_key(self) -> PublicKeyTypes:
        return self.private_key.public_key()

    def _jwk(self, key: Any) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        jwk = json.loads(algorithm.to_jwk(key))
        # PyJWT marks the private JWK "key_ops": ["sign"]; the provider would publish that on the
        # public half, where verifiers honouring key_ops would refuse to verify with it.
        jwk.pop("key_ops", None)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def private_jwk(self) -> dict[str, Any]:
        return self._jwk(self.private_key)

    def public_jwk(self) -> dict[str, Any]:
        return self._jwk(self.public_key)

    def public_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM: what a verifier may load, and so what an
        attacker tries as an HMAC secret."""
        return self.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)


def generate_signing_key(alg: str, *, kid: str | None = None) -> SigningKey:
    """A fresh RS256 (RSA 2048) or ES256 (P-256) key, with a random ``kid`` unless one is given."""
    if alg == "RS256":
        private_key: PrivateKeyTypes = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"signing algorithm {alg!r} is not supported; expected one of {', '.join(ALGORITHMS)}")
    return SigningKey(kid=kid or f"{alg.lower()}-{secrets.token_hex(4)}", alg=alg, private_key=private_key)


def generate_signing_keys() -> tuple[SigningKey, ...]:
    """One key per algorithm of ALGORITHMS."""
    return tuple(generate_signing_key(alg) for alg in ALGORITHMS)


def private_jwks(keys: tuple[SigningKey, ...]) -> dict[str, Any]:
    return {"keys": [key.private_jwk() for key in keys]}
