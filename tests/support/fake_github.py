"""A small stand-in for GitHub's OAuth app endpoints and user API, on loopback.

GitHub itself cannot be reached from the tests, and its login is not OpenID Connect (so the real
OpenID provider cannot play it): this fake answers the four requests a GitHub login makes, the way
GitHub documents them, and checks what GitHub checks:

- ``GET /login/oauth/authorize``: the person approves at once (``signed_in`` says who); the code is
  bound to the client, the redirect URI and the PKCE challenge (S256 only, as GitHub);
- ``POST /login/oauth/access_token``: client secret, code (once), redirect URI and PKCE verifier;
  errors are answered 200 with ``{"error": ...}``, as GitHub does;
- ``GET /user`` and ``GET /user/emails`` with the access token: the account and its addresses
  with GitHub's ``primary`` and ``verified`` flags.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

from aiohttp import web

from .background_http import BackgroundApp


@dataclass(frozen=True)
class GithubAccount:
    login: str
    # (address, primary, verified)
    emails: tuple[tuple[str, bool, bool], ...]


@dataclass
class _Grant:
    account: GithubAccount
    redirect_uri: str
    challenge: str


class FakeGithub(BackgroundApp):
    """``signed_in`` is the account that approves the next authorization; ``exchanges`` records
    every form the token endpoint received."""

    def __init__(self, client_id: str = "gh-client-id") -> None:
        self.client_id = client_id
        self.client_secret = secrets.token_urlsafe(20)
        self.signed_in: GithubAccount | None = None
        self.exchanges: list[dict[str, str]] = []
        self._codes: dict[str, _Grant] = {}
        self._tokens: dict[str, GithubAccount] = {}
        app = web.Application()
        app.router.add_get("/login/oauth/authorize", self._authorize)
        app.router.add_post("/login/oauth/access_token", self._access_token)
        app.router.add_get("/user", self._user)
        app.router.add_get("/user/emails", self._emails)
        super().__init__(app)

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("client_id") != self.client_id or query.get("code_challenge_method") != "S256":
            raise web.HTTPBadRequest(text="unknown client or no S256 code challenge")
        if query.get("scope") != "user:email":
            raise web.HTTPBadRequest(text=f"expected scope user:email, got {query.get('scope')!r}")
        assert self.signed_in is not None, "set signed_in to the account that approves"
        code = secrets.token_urlsafe(16)
        self._codes[code] = _Grant(self.signed_in, query["redirect_uri"], query["code_challenge"])
        raise web.HTTPFound(f"{query['redirect_uri']}?code={code}&state={query['state']}")

    async def _access_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.exchanges.append(dict(form))
        grant = self._codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "incorrect_client_credentials"})
        if grant is None or grant.redirect_uri != form.get("redirect_uri") or grant.challenge != challenge:
            return web.json_response({"error": "bad_verification_code"})
        token = f"gho_{secrets.token_urlsafe(24)}"
        self._tokens[token] = grant.account
        return web.json_response({"access_token": token, "token_type": "bearer", "scope": "user:email"})

    def _account(self, request: web.Request) -> GithubAccount:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        account = self._tokens.get(token) if scheme.lower() in ("bearer", "token") else None
        if account is None:
            raise web.HTTPUnauthorized(text='{"message": "Bad credentials"}', content_type="application/json")
        return account

    async def _user(self, request: web.Request) -> web.Response:
        account = self._account(request)
        return web.json_response({"login": account.login, "id": abs(hash(account.login)) % 10**8})

    async def _emails(self, request: web.Request) -> web.Response:
        return web.json_response([{"email": email, "primary": primary, "verified": verified, "visibility": None}
                                  for email, primary, verified in self._account(request).emails])
