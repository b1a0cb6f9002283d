"""People's login at any OpenID Connect provider (Google, GitLab, Okta, Keycloak, ...).

Authorization code flow with PKCE (S256), a fresh ``state`` (checked by the caller against the
session) and ``nonce`` per login. The code is exchanged at the token endpoint with the client's
secret; the ID token is verified (:mod:`actuator.tokens`: signature by a published key,
algorithm pinned to what discovery or ``--oidc-algorithms`` allows, issuer, audience = our client
id, expiry) and must carry our nonce. Its ``email``, ``email_verified`` and groups claim say who
it is; a provider that keeps them out of the ID token is asked its userinfo endpoint, for the same
subject. An ``iss`` parameter on the callback (RFC 9207) must be our issuer: a login started here
cannot be finished with another provider's code.
"""
from __future__ import annotations

import hmac
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp

from .discovery import Discovery
from .identity import Identity, LoginError, Pkce, with_query
from .jwks import JwksCache
from .provider_client import ProviderClient, ProviderError
from .settings import OidcSettings
from .tokens import ASYMMETRIC_ALGORITHMS, TokenError, TokenVerifier


class OidcFlow:
    name = "oidc"

    def __init__(self, settings: OidcSettings, client: ProviderClient) -> None:
        self.settings = settings
        self.label = settings.label
        self.client = client
        self.discovery = Discovery(settings.discovery_url, client)
        self.jwks = JwksCache(client, lambda: self.discovery.endpoint("jwks_uri"))
        self._verifier: TokenVerifier | None = None

    async def begin(self, redirect_uri: str, state: str) -> tuple[str, dict[str, str]]:
        pkce, nonce = Pkce.fresh(), secrets.token_urlsafe(24)
        url = with_query(await self.discovery.endpoint("authorization_endpoint"), {
            "response_type": "code", "client_id": self.settings.client_id, "redirect_uri": redirect_uri,
            "scope": " ".join(self.settings.scopes), "state": state, "nonce": nonce,
            "code_challenge": pkce.challenge, "code_challenge_method": "S256"})
        return url, {"nonce": nonce, "verifier": pkce.verifier}

    async def complete(self, params: Mapping[str, str], kept: Mapping[str, str], redirect_uri: str) -> Identity:
        if "error" in params:
            raise LoginError(f"the provider answered {params['error']!r}: {params.get('error_description', '')}")
        if "iss" in params and params["iss"] != self.discovery.issuer:
            raise LoginError(f"the callback names issuer {params['iss']!r}, not {self.discovery.issuer!r}")
        code = params.get("code")
        if not code:
            raise LoginError("the callback carries no code")
        tokens = await self._exchange(code, kept["verifier"], redirect_uri)
        claims = await self._verified(tokens.get("id_token"))
        if not hmac.compare_digest(str(claims.get("nonce", "")), kept["nonce"]):
            raise LoginError("the ID token's nonce is not this login's")
        if "email" not in claims and isinstance(tokens.get("access_token"), str):
            claims = {**await self._userinfo(tokens["access_token"], claims["sub"]), **claims}
        groups = claims.get(self.settings.groups_claim) or []
        return Identity(provider=self.name, subject=str(claims.get("sub")),
                        emails=((claims["email"], claims.get("email_verified")),) if "email" in claims else (),
                        groups=tuple(group for group in groups if isinstance(group, str))
                        if isinstance(groups, list) else ())

    async def _exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        metadata = await self.discovery.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier}
        auth = None
        # client_secret_basic is the default when a provider lists nothing (OpenID Connect Discovery).
        if "client_secret_basic" in metadata.get("token_endpoint_auth_methods_supported", ["client_secret_basic"]):
            # RFC 6749 §2.3.1: both are form-encoded before going into the header.
            auth = aiohttp.BasicAuth(urllib.parse.quote_plus(self.settings.client_id),
                                     urllib.parse.quote_plus(self.settings.client_secret))
        else:
            form.update(client_id=self.settings.client_id, client_secret=self.settings.client_secret)
        try:
            tokens = await self.client.post_form(metadata["token_endpoint"], form, auth=auth)
        except ProviderError as exc:
            raise LoginError(f"the code exchange failed: {exc}") from None
        if not isinstance(tokens, dict):
            raise LoginError("the token endpoint's answer is not a JSON object")
        return tokens

    async def _verified(self, id_token: Any) -> dict[str, Any]:
        if not isinstance(id_token, str):
            raise LoginError("the token endpoint returned no ID token (is 'openid' among --oidc-scopes?)")
        verifier = await self._token_verifier()
        try:
            claims = await verifier.verify(id_token)
        except TokenError as exc:
            raise LoginError(f"ID token refused: {exc}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            raise LoginError("the ID token is for several audiences and not authorised for this client (azp)")
        if not isinstance(claims.get("sub"), str):
            raise LoginError("the ID token has no subject")
        return claims

    async def _token_verifier(self) -> TokenVerifier:
        if self._verifier is None:
            algorithms = self.settings.algorithms
            if algorithms is None:
                offered = (await self.discovery.metadata()).get("id_token_signing_alg_values_supported", ["RS256"])
                algorithms = tuple(alg for alg in offered if alg in ASYMMETRIC_ALGORITHMS)
                if not algorithms:
                    raise LoginError(f"the provider signs ID tokens with {offered}, none of them asymmetric; "
                                     f"refusing (set --oidc-algorithms)")
            self._verifier = TokenVerifier(self.discovery.issuer, self.settings.client_id, algorithms, self.jwks)
        return self._verifier

    async def _userinfo(self, access_token: str, subject: str) -> dict[str, Any]:
        """Claims from the userinfo endpoint, when the ID token has no email (Okta's default)."""
        endpoint = (await self.discovery.metadata()).get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return {}
        try:
            info = await self.client.get_json(endpoint, headers={"Authorization": f"Bearer {access_token}"})
        except ProviderError as exc:
            raise LoginError(f"the userinfo request failed: {exc}") from None
        if not isinstance(info, dict) or info.get("sub") != subject:
            raise LoginError("the userinfo answer is for another subject")
        return info
