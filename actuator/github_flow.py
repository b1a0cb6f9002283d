"""People's login with GitHub, as Flower offers it: GitHub's OAuth apps are OAuth 2, not OpenID
Connect, so there is no ID token to verify.

The person authorizes at ``/login/oauth/authorize`` (scope ``user:email``, state, PKCE S256,
which GitHub supports), the code is exchanged at ``/login/oauth/access_token`` with the client
secret, and the access token then asks the API who this is: ``GET /user`` for the account and
``GET /user/emails`` for the addresses with GitHub's own ``verified`` flag, the primary first.
The email policy then picks the first verified address it allows. GitHub Enterprise Server works
with ``--github-url`` and ``--github-api-url``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .identity import Identity, LoginError, Pkce, with_query
from .provider_client import ProviderClient, ProviderError
from .settings import GithubSettings

SCOPE = "user:email"


class GithubFlow:
    name = "github"
    label = "GitHub"

    def __init__(self, settings: GithubSettings, client: ProviderClient) -> None:
        self.settings = settings
        self.client = client

    async def begin(self, redirect_uri: str, state: str) -> tuple[str, dict[str, str]]:
        pkce = Pkce.fresh()
        url = with_query(f"{self.settings.url.rstrip('/')}/login/oauth/authorize", {
            "client_id": self.settings.client_id, "redirect_uri": redirect_uri, "scope": SCOPE,
            "state": state, "code_challenge": pkce.challenge, "code_challenge_method": "S256",
            "allow_signup": "false"})
        return url, {"verifier": pkce.verifier}

    async def complete(self, params: Mapping[str, str], kept: Mapping[str, str], redirect_uri: str) -> Identity:
        if "error" in params:
            raise LoginError(f"GitHub answered {params['error']!r}: {params.get('error_description', '')}")
        code = params.get("code")
        if not code:
            raise LoginError("the callback carries no code")
        token = await self._exchange(code, kept["verifier"], redirect_uri)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": "2022-11-28"}
        api = self.settings.api_url.rstrip("/")
        try:
            user = await self.client.get_json(f"{api}/user", headers=headers)
            emails = await self.client.get_json(f"{api}/user/emails", headers=headers)
        except ProviderError as exc:
            raise LoginError(f"GitHub's API refused: {exc}") from None
        if not isinstance(user, dict) or not isinstance(emails, list):
            raise LoginError("GitHub's API answered in an unexpected shape")
        listed = [entry for entry in emails if isinstance(entry, dict) and isinstance(entry.get("email"), str)]
        listed.sort(key=lambda entry: entry.get("primary") is not True)
        return Identity(provider=self.name, subject=str(user.get("login") or user.get("id")),
                        emails=tuple((entry["email"], entry.get("verified")) for entry in listed))

    async def _exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        form = {"client_id": self.settings.client_id, "client_secret": self.settings.client_secret,
                "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
        try:
            answer: Any = await self.client.post_form(f"{self.settings.url.rstrip('/')}/login/oauth/access_token", form)
        except ProviderError as exc:
            raise LoginError(f"the code exchange failed: {exc}") from None
        # GitHub answers errors with 200 and {"error": ...}.
        if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise LoginError(f"GitHub gave no access token ({error or 'unexpected answer'})")
        return answer["access_token"]
