"""A tiny OpenID Connect relying party: what issue 7's console does at login, reduced to its bones.

``GET /login`` sends the browser to the provider (code flow, PKCE S256, state bound to a cookie,
nonce); ``GET /callback`` checks the state against the cookie, exchanges the code with the
verifier, verifies the ID token against the provider's JWKS (issuer, audience, RS256, nonce)
and shows who signed in. It exists to prove a real browser completes the provider's login; the
console brings its own.

The provider calls are blocking (oidc_login's helpers): they hold up this app's own event loop
thread only, which serves one browser at a time.
"""
from __future__ import annotations

import html

from aiohttp import web

from tests.support.background_http import BackgroundApp
from tests.support.oidc_login import AuthorizationRequest, authorization_request, exchange_code
from tests.support.oidc_provider import OidcClient, OidcProvider

STATE_COOKIE = "rp_state"


class RelyingParty(BackgroundApp):
    """Serves /login and /callback; ``register`` at the provider once it listens."""

    def __init__(self, provider: OidcProvider) -> None:
        self.provider = provider
        self.client: OidcClient | None = None
        self.pending: dict[str, AuthorizationRequest] = {}
        self.signed_in: list[dict] = []
        app = web.Application()
        app.router.add_get("/login", self._login)
        app.router.add_get("/callback", self._callback)
        super().__init__(app)

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"

    def register(self) -> None:
        self.client = self.provider.register_client([self.redirect_uri], client_name="tiny relying party")

    def __enter__(self) -> "RelyingParty":
        super().__enter__()
        self.register()
        return self

    async def _login(self, request: web.Request) -> web.Response:
        assert self.client is not None, "register() the relying party before sending anyone to /login"
        auth = authorization_request(self.provider, self.client, self.redirect_uri)
        self.pending[auth.state] = auth
        response = web.HTTPFound(auth.url)
        response.set_cookie(STATE_COOKIE, auth.state, httponly=True, samesite="Lax")
        raise response

    async def _callback(self, request: web.Request) -> web.Response:
        assert self.client is not None
        state = request.query.get("state", "")
        if "error" in request.query:
            raise web.HTTPBadRequest(text=f"the provider answered {request.query['error']}: "
                                          f"{request.query.get('error_description', '')}")
        if state != request.cookies.get(STATE_COOKIE) or state not in self.pending:
            raise web.HTTPBadRequest(text="state does not match this browser's login")
        auth = self.pending.pop(state)
        tokens = exchange_code(self.provider, self.client, request.query["code"], redirect_uri=self.redirect_uri,
                               code_verifier=auth.code_verifier)
        claims = self.provider.verified_claims(tokens["id_token"], audience=self.client.client_id,
                                               algorithms=["RS256"])
        if claims.get("nonce") != auth.nonce:
            raise web.HTTPBadRequest(text="nonce does not match this login")
        self.signed_in.append(claims)
        body = (f"<!DOCTYPE html><html><body><p id='who'>{html.escape(claims.get('email', ''))}</p>"
                f"<p id='sub'>{html.escape(claims['sub'])}</p></body></html>")
        return web.Response(text=body, content_type="text/html")
