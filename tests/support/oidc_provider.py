"""A real OpenID Connect provider on a free loopback port: panva's ``oidc-provider`` run by Node.

Issue 7's tests log people into the console with OpenID Connect and let Alertmanager reach the
actuator with ``http_config.oauth2`` (client credentials). Both need a provider that behaves
like Google, Okta or Keycloak on the wire: discovery, JWKS, authorization code with PKCE (S256,
required), state, nonce, ID tokens carrying ``email``, ``email_verified`` and ``groups``, and
client credentials issuing RFC 9068 JWT access tokens for a resource indicator (the audience).
``oidc-provider`` (certified by the OpenID Foundation) is all of that; tests/support/oidc/
holds its package lock and the small server script this module configures and starts.

People log in non-interactively through the provider's own login form (login = a user id of
the configuration, plus its password): oidc_login.HeadlessLogin posts it over HTTP, a browser
test fills it in. Consent is implied. The provider's signing keys are generated here
(signing_keys.py), so ``OidcProvider.forge`` mints the tokens the provider would refuse to
issue (jwt_forgery.py).

Two things to know. Cookies ignore ports, so in a browser the provider (on 127.0.0.1) shares
the cookie jar with a relying party on 127.0.0.1; its cookies are named ``test_op_*`` so as not
to collide. And oidc-provider 9 prints "Unsupported runtime" on Node 20 (it is tested on 22+);
everything this module relies on is proven to work on Debian's Node 20 by tests/authinfra/.

Used by tests/authinfra/ (which prove it) and by the tests of issue 7.
"""
from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests

from .jwt_forgery import TokenForge
from .polling import wait_for
from .processes import terminate
from .signing_keys import SigningKey, generate_signing_keys, private_jwks

SERVER_DIR = Path(__file__).resolve().parent / "oidc"
SERVER_SCRIPT = SERVER_DIR / "server.mjs"

COMPANY_DOMAIN = "company.com"
DEFAULT_PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class OidcUser:
    """Someone who can log in: ``id`` is both the login and the ``sub`` of their tokens.

    ``email`` is given to relying parties exactly as written, hostile or not; ``None`` leaves
    the claim out.
    """

    id: str
    email: str | None
    email_verified: bool = True
    groups: tuple[str, ...] = ()
    name: str | None = None
    password: str = DEFAULT_PASSWORD

    def claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {"preferred_username": self.id, "groups": list(self.groups),
                                  "name": self.name or self.id}
        if self.email is not None:
            claims.update(email=self.email, email_verified=self.email_verified)
        return claims


# People of the company an allowed-email pattern like ``.*@company\.com`` is meant to admit.
COMPANY_USERS = (
    OidcUser("alice", f"alice@{COMPANY_DOMAIN}", groups=("autopilot-operators",), name="Alice Operator"),
    OidcUser("bob", f"bob@{COMPANY_DOMAIN}", groups=("autopilot-viewers",), name="Bob Viewer"),
)

# Users an allowed-email check must refuse, or treat deliberately (``uppercase``), each named for
# the mistake it catches: Flower's CVE-2022-30034 (``re.match`` of an unanchored, unescaped
# pattern) let the first ones in.
TRICKY_USERS = (
    OidcUser("query-suffix", f"attacker@evil.com?x@{COMPANY_DOMAIN}"),
    OidcUser("fragment-suffix", f"attacker@evil.com#@{COMPANY_DOMAIN}"),
    OidcUser("domain-suffix", f"attacker@{COMPANY_DOMAIN}.evil.com"),
    OidcUser("newline", f"attacker@evil.com\n@{COMPANY_DOMAIN}"),
    OidcUser("nul-byte", f"attacker@evil.com\x00@{COMPANY_DOMAIN}"),
    OidcUser("unescaped-dot", "attacker@companyxcom.net"),
    OidcUser("subdomain", f"attacker@evil.{COMPANY_DOMAIN}"),
    # Cyrillic "о" (U+043E) in place of the Latin "o" of company.com.
    OidcUser("lookalike", "alice@c\u043empany.com"),
    # Domains are case-insensitive; a check must decide on purpose whether this is alice.
    OidcUser("uppercase", f"ALICE@{COMPANY_DOMAIN.upper()}", groups=("autopilot-operators",)),
    OidcUser("unverified", f"mallory@{COMPANY_DOMAIN}", email_verified=False),
    OidcUser("no-email", None),
)

DEFAULT_USERS = COMPANY_USERS + TRICKY_USERS


@dataclass(frozen=True)
class ResourceServer:
    """An API that accepts this provider's JWT access tokens (RFC 8707 resource indicator).

    ``indicator`` is what a client asks for (the ``resource`` parameter); ``audience`` is the
    token's ``aud`` (the indicator itself unless given); ``scope`` lists what may be granted.
    """

    indicator: str
    scope: str = "webhook"
    audience: str | None = None
    ttl: int = 300
    alg: str = "RS256"

    def config(self) -> dict[str, Any]:
        return {"audience": self.audience or self.indicator, "scope": self.scope, "ttl": self.ttl,
                "alg": self.alg}


# The actuator as a resource server, the way issue 7's Alertmanager oauth2 tests will name it.
ACTUATOR_RESOURCE = ResourceServer("https://actuator.autopilot.test", scope="webhook control")


def _registration(redirect_uris: Sequence[str], grant_types: Sequence[str]) -> dict[str, Any]:
    """Client metadata as OpenID Connect Dynamic Client Registration names it."""
    return {"redirect_uris": list(redirect_uris), "grant_types": list(grant_types),
            "response_types": ["code"] if "authorization_code" in grant_types else []}


@dataclass(frozen=True)
class OidcClient:
    """A registered client (relying party or machine), with its secret."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("authorization_code",)

    def metadata(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "client_secret": self.client_secret,
                **_registration(self.redirect_uris, self.grant_types)}


def machine_client(client_id: str = "alertmanager") -> OidcClient:
    """A client that may only use the client credentials grant, as Alertmanager's ``oauth2`` does."""
    return OidcClient(client_id, secrets.token_urlsafe(24), grant_types=("client_credentials",))


class OidcProviderError(RuntimeError):
    """The provider answered a request with an OAuth error (its ``error`` and description)."""


class OidcProvider:
    """Starts ``node server.mjs`` with this configuration; ``with`` starts and closes it.

    ``users`` may log in; ``clients`` are registered from the start (more can be added while it
    runs with ``register_client``); ``resource_servers`` are the audiences of access tokens, and
    ``default_resource`` the one used when a token request names none. ``tls`` is a
    ``(cert_file, key_file)`` pair to serve HTTPS (tls.py makes them); the issuer is then
    ``https://127.0.0.1:<port>`` and ``ca_file`` is what requests here trust.
    """

    def __init__(
        self,
        *,
        users: Sequence[OidcUser] = DEFAULT_USERS,
        clients: Sequence[OidcClient] = (),
        resource_servers: Sequence[ResourceServer] = (ACTUATOR_RESOURCE,),
        default_resource: str | None = None,
        id_token_ttl: int = 300,
        tls: tuple[Path, Path] | None = None,
        ca_file: Path | None = None,
    ) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed; run ./run.sh setup")
        if not (SERVER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(f"oidc-provider is not installed in {SERVER_DIR}; run ./run.sh setup")
        ids = [user.id for user in users]
        if len(set(ids)) != len(ids):
            raise ValueError(f"user ids must be unique: {ids}")
        self.node = node
        self.users = {user.id: user for user in users}
        self.clients = list(clients)
        self.resource_servers = {server.indicator: server for server in resource_servers}
        self.default_resource = default_resource
        self.id_token_ttl = id_token_ttl
        self.tls = tls
        self.ca_file = ca_file
        self.keys: tuple[SigningKey, ...] = generate_signing_keys()
        self.registration_token = secrets.token_urlsafe(24)
        self.dir = Path(tempfile.mkdtemp(prefix="autopilot-oidc-"))
        self.log = self.dir / "oidc-provider.log"
        self.issuer = ""
        self._discovery: dict[str, Any] | None = None
        self.proc: subprocess.Popen | None = None

    def _config(self, ready_file: Path) -> dict[str, Any]:
        return {
            "jwks": private_jwks(self.keys),
            "cookie_keys": [secrets.token_urlsafe(32)],
            "users": [{"id": user.id, "password": user.password, "claims": user.claims()}
                      for user in self.users.values()],
            "clients": [client.metadata() for client in self.clients],
            "resource_servers": {indicator: server.config() for indicator, server in self.resource_servers.items()},
            "default_resource": self.default_resource,
            "registration_token": self.registration_token,
            "id_token_ttl": self.id_token_ttl,
            "tls": {"cert": str(self.tls[0]), "key": str(self.tls[1])} if self.tls else None,
            "ready_file": str(ready_file),
        }

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self, *, timeout: float = 30.0) -> None:
        ready_file = self.dir / "ready.json"
        config_file = self.dir / "config.json"
        config_file.write_text(json.dumps(self._config(ready_file)))
        with self.log.open("wb") as out:
            # stdin stays a pipe: the server exits when it closes, so a killed test leaves no node behind.
            self.proc = subprocess.Popen(
                [self.node, str(SERVER_SCRIPT), str(config_file)], cwd=SERVER_DIR,
                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"oidc-provider exited with {self.proc.returncode} while starting:\n"
                                     f"{self.log_text()}")
            return ready_file.exists()

        try:
            wait_for(ready, timeout=timeout, interval=0.05, what="oidc-provider to listen")
        except BaseException:
            self.stop()
            raise
        self.issuer = json.loads(ready_file.read_text())["issuer"]
        self._discovery = None

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "OidcProvider":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def verify(self) -> str | bool:
        """What ``requests`` should verify this provider's certificate against."""
        return str(self.ca_file) if self.ca_file else True

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def discovery(self) -> dict[str, Any]:
        """The provider's metadata, fetched once per start (it does not change while running)."""
        if self._discovery is None:
            self._discovery = self._get(self.discovery_url)
        return self._discovery

    def endpoint(self, name: str) -> str:
        """An endpoint URL from discovery, e.g. ``token_endpoint`` or ``jwks_uri``."""
        return self.discovery()[name]

    def jwks(self) -> dict[str, Any]:
        """The public keys the provider publishes (fetched, not computed here)."""
        return self._get(self.endpoint("jwks_uri"))

    def user(self, user_id: str) -> OidcUser:
        try:
            return self.users[user_id]
        except KeyError:
            raise KeyError(f"no user {user_id!r}; known: {', '.join(self.users)}") from None

    def verified_claims(self, token: str, *, audience: str, algorithms: Sequence[str] = ("RS256", "ES256"),
                        ) -> dict[str, Any]:
        """The claims of ``token`` once verified as a strict relying party would: signature by the
        published key its ``kid`` names, algorithm among ``algorithms``, this issuer, ``audience``,
        and ``exp``/``iat`` present and current. Raises PyJWT's error for the first fault."""
        keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(self.jwks()).keys}
        kid = jwt.get_unverified_header(token).get("kid")
        if kid not in keys:
            raise jwt.InvalidKeyError(f"token names kid {kid!r}; the provider publishes {', '.join(keys)}")
        return jwt.decode(token, keys[kid].key, algorithms=list(algorithms), audience=audience,
                          issuer=self.issuer, options={"require": ["exp", "iat", "iss", "aud", "sub"]})

    @property
    def forge(self) -> TokenForge:
        """Mints tokens with this provider's keys and issuer (jwt_forgery.py)."""
        return TokenForge(self.keys, self.issuer)

    def register_client(
        self,
        redirect_uris: Sequence[str] = (),
        *,
        grant_types: Sequence[str] = ("authorization_code",),
        **metadata: Any,
    ) -> OidcClient:
        """Register a client while the provider runs (dynamic registration, RFC 7591), e.g. a
        relying party whose callback port is known only once it listens."""
        body = {**_registration(redirect_uris, grant_types), **metadata}
        answer = self._call("post", self.endpoint("registration_endpoint"), json=body,
                            headers={"Authorization": f"Bearer {self.registration_token}"})
        return OidcClient(answer["client_id"], answer["client_secret"], tuple(answer.get("redirect_uris", ())),
                          tuple(answer["grant_types"]))

    def client_credentials_token(
        self, client: OidcClient, *, resource: str | None = None, scope: str | None = None,
    ) -> dict[str, Any]:
        """The token endpoint's answer to a client credentials request (``access_token``, ...),
        authenticated with HTTP basic as Alertmanager does."""
        form = {"grant_type": "client_credentials", **({"resource": resource} if resource else {}),
                **({"scope": scope} if scope else {})}
        return self._call("post", self.endpoint("token_endpoint"), data=form,
                          auth=(client.client_id, client.client_secret))

    def alertmanager_oauth2(self, client: OidcClient, *, resource: str | None = None,
                            scopes: Sequence[str] = ()) -> dict[str, Any]:
        """The ``http_config.oauth2`` block that makes Alertmanager fetch tokens for ``client``."""
        oauth2: dict[str, Any] = {"client_id": client.client_id, "client_secret": client.client_secret,
                                  "token_url": self.endpoint("token_endpoint")}
        if scopes:
            oauth2["scopes"] = list(scopes)
        if resource:
            oauth2["endpoint_params"] = {"resource": resource}
        if self.ca_file:
            oauth2["tls_config"] = {"ca_file": str(self.ca_file)}
        return oauth2

    def _get(self, url: str) -> Any:
        return self._call("get", url)

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = requests.request(method, url, timeout=10, verify=self.verify, **kwargs)
        if response.status_code >= 400:
            raise OidcProviderError(f"{method.upper()} {url} answered {response.status_code}: {response.text}")
        return response.json()
