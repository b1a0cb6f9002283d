"""Logging in at the test OpenID provider without a browser, and the relying party's side of it.

``HeadlessLogin`` is a cookie-keeping HTTP client that walks a login the way a person's browser
would: from a relying party's login URL (or an authorization URL) through redirects to the
provider's login form, posts the user's login and password, and follows redirects back. It can
stop at the redirect to the relying party's callback, so a test may inspect or tamper with the
``code`` and ``state`` before delivering them. ``authorization_request`` and ``exchange_code``
are the relying party's half of authorization code + PKCE (S256), state and nonce.

Used by tests/authinfra/ and by issue 7's tests of the console's OpenID Connect login.
"""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import requests

from .oidc_provider import OidcClient, OidcProvider, OidcProviderError, OidcUser

DEFAULT_SCOPE = "openid email profile groups"
_INTERACTION_PATH = re.compile(r"^/interaction/[\w-]+$")


def pkce_pair() -> tuple[str, str]:
    """A fresh ``(code_verifier, code_challenge)`` for the S256 method (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass(frozen=True)
class AuthorizationRequest:
    """An authorization URL and the secrets the relying party keeps to check the answer."""

    url: str
    redirect_uri: str
    state: str
    nonce: str
    code_verifier: str


def authorization_request(
    provider: OidcProvider, client: OidcClient, redirect_uri: str, *, scope: str = DEFAULT_SCOPE, **extra: str,
) -> AuthorizationRequest:
    """What a relying party sends a person to: code flow, PKCE S256, fresh state and nonce."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": redirect_uri,
              "scope": scope, "state": state, "nonce": nonce, "code_challenge": challenge,
              "code_challenge_method": "S256", **extra}
    url = f"{provider.endpoint('authorization_endpoint')}?{urllib.parse.urlencode(params)}"
    return AuthorizationRequest(url=url, redirect_uri=redirect_uri, state=state, nonce=nonce,
                                code_verifier=verifier)


def exchange_code(
    provider: OidcProvider, client: OidcClient, code: str, *, redirect_uri: str, code_verifier: str | None,
) -> dict[str, Any]:
    """The token endpoint's answer (``id_token``, ``access_token``, ...) for ``code``.

    ``code_verifier=None`` leaves PKCE out, to show the provider refuses that.
    """
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            **({"code_verifier": code_verifier} if code_verifier is not None else {})}
    response = requests.post(provider.endpoint("token_endpoint"), data=form, timeout=10, verify=provider.verify,
                             auth=(client.client_id, client.client_secret))
    if response.status_code >= 400:
        raise OidcProviderError(f"token endpoint answered {response.status_code}: {response.text}")
    return response.json()


def callback_params(response: requests.Response) -> dict[str, str]:
    """The query of the redirect ``response`` (to the relying party's callback): code, state, iss."""
    location = response.headers["Location"]
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


class _AutoSubmitForm(HTMLParser):
    """The first ``<form method="post">`` of a page, its hidden fields and how many inputs are
    not hidden: a form with none is one the provider's page submits by script (e.g. to confirm
    the end of another user's session)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.visible_inputs = 0
        self._in_form = self._seen_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form" and not self._seen_form and attributes.get("method", "").lower() == "post":
            self._in_form = self._seen_form = True
            self.action = attributes.get("action", "")
        elif tag == "input" and self._in_form:
            if attributes.get("type") == "hidden":
                self.fields[attributes.get("name", "")] = attributes.get("value", "")
            else:
                self.visible_inputs += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


class LoginRefused(AssertionError):
    """The provider's login form did not accept the login and password."""


class HeadlessLogin:
    """One person's browser, minus the browser: its cookies persist across calls, so a second
    login at the same provider is silent (single sign-on) unless the request says ``prompt=login``.
    """

    def __init__(self, provider: OidcProvider, *, max_steps: int = 20) -> None:
        self.provider = provider
        self.max_steps = max_steps
        self.session = requests.Session()
        self.session.verify = provider.verify

    def log_in(self, start_url: str, user: OidcUser, *, stop_at: str | None = None) -> requests.Response:
        """Go from ``start_url`` through the provider's login as ``user``.

        Returns the redirect to a URL starting with ``stop_at`` (not followed), or, without
        ``stop_at``, the first response that is neither a redirect nor the login form.
        """
        response = self.session.get(start_url, allow_redirects=False, timeout=10)
        for _ in range(self.max_steps):
            if response.is_redirect:
                location = urllib.parse.urljoin(response.url, response.headers["Location"])
                if stop_at is not None and location.startswith(stop_at):
                    return response
                response = self.session.get(location, allow_redirects=False, timeout=10)
            elif self._is_login_form(response):
                response = self._submit(response, user)
            elif (form := self._auto_submit_form(response)) is not None:
                action, fields = form
                response = self.session.post(action, data=fields, allow_redirects=False, timeout=10)
            else:
                return response
        raise AssertionError(f"login from {start_url} as {user.id} took more than {self.max_steps} steps; "
                             f"last at {response.url} ({response.status_code})")

    def _is_login_form(self, response: requests.Response) -> bool:
        url = urllib.parse.urlsplit(response.url)
        return (response.status_code == 200 and response.url.startswith(self.provider.issuer)
                and _INTERACTION_PATH.match(url.path) is not None)

    def _auto_submit_form(self, response: requests.Response) -> tuple[str, dict[str, str]] | None:
        if response.status_code != 200 or not response.url.startswith(self.provider.issuer):
            return None
        form = _AutoSubmitForm()
        form.feed(response.text)
        if form.action is None or form.visible_inputs:
            return None
        return urllib.parse.urljoin(response.url, form.action), form.fields

    def _submit(self, form_page: requests.Response, user: OidcUser) -> requests.Response:
        action = f"{form_page.url.split('?')[0]}/login"
        response = self.session.post(action, data={"login": user.id, "password": user.password},
                                     allow_redirects=False, timeout=10)
        if response.status_code == 401:
            raise LoginRefused(f"the provider refused the login of {user.id!r}")
        return response
