"""Who is calling: credentials in the ``Authorization`` header, proved or refused.

Credentials come in the forms Alertmanager's ``http_config`` and scripts send them:

- HTTP basic: the webhook's own users (``--webhook-basic-auth``: webhook only), Flower's
  ``--basic-auth user:pass`` users (every role, as before roles existed, unless ``--roles``
  names them), and bcrypt users from a web-config file (``--users-file``: people, their roles
  from ``--roles``, else ``--default-role``);
- bearer: the webhook's own tokens (``--webhook-bearer-token-file``: webhook only), the tokens of
  ``--bearer-token-file`` (every role, as before), and JWT access tokens from an OAuth 2
  provider (``--jwt-issuer``; roles from the token's scopes, ``--jwt-scope-roles``).

Plain passwords and tokens are compared in constant time over every configured credential, so
timing reveals neither which user exists nor how much of a secret matched; bcrypt users are
checked as :mod:`password_users` explains. Each route declares the :class:`Access` it needs;
anything undeclared needs the strictest of the people's accesses (operator).
"""
from __future__ import annotations

import base64
import binascii
import enum
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .password_users import PasswordChecker
from .provider_client import ProviderError
from .roles import ALL_ROLES, Role, describe, expand
from .settings import AuthSettings
from .tokens import TokenError, TokenVerifier

REALM = "celery-autopilot"
F = TypeVar("F", bound=Callable[..., Any])


class Access(enum.Enum):
    OPEN = "open"          # health checks, the login pages, static files
    METRICS = "metrics"    # /metrics: open unless --metrics-auth
    READ = "read"          # console, rules, audit log, read API
    WRITE = "write"        # remote control, pause and resume, the console's forms
    WEBHOOK = "webhook"    # POST /webhook


REQUIRED_ROLE = {Access.METRICS: Role.VIEWER, Access.READ: Role.VIEWER, Access.WRITE: Role.OPERATOR,
                 Access.WEBHOOK: Role.WEBHOOK}


def requires(access: Access) -> Callable[[F], F]:
    """Declare the access a request handler needs."""
    def mark(handler: F) -> F:
        handler.access = access  # type: ignore[attr-defined]
        return handler
    return mark


def access_of(handler: Any) -> Access:
    return getattr(handler, "access", Access.WRITE)


def form(handler: F) -> F:
    """Mark a handler that browsers reach through the console's forms: it needs the session's
    CSRF token whatever the credentials (a browser also resends remembered basic credentials)."""
    handler.form = True  # type: ignore[attr-defined]
    return handler


def is_form(handler: Any) -> bool:
    return getattr(handler, "form", False)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, named for the audit log (never with its secret), and its roles."""

    name: str
    method: str
    roles: frozenset[Role] = ALL_ROLES

    def describe(self) -> str:
        return f"{self.method}:{self.name}"

    def may(self, access: Access) -> bool:
        return access not in REQUIRED_ROLE or REQUIRED_ROLE[access] in self.roles

    def roles_text(self) -> str:
        return describe(self.roles)


ANONYMOUS = Principal("anonymous", "none")


@dataclass(frozen=True)
class Refusal:
    """Credentials that prove nothing: ``reason`` for the log, ``user`` the name tried (for
    throttling), ``unavailable`` when the provider's keys could not be fetched (503: retry)."""

    reason: str
    user: str | None = None
    unavailable: bool = False


class _PlainSecrets:
    """Secrets compared in constant time, every one of them on every check."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = [(name.encode(), secret.encode()) for name, secret in secrets.items()]

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def find(self, name: bytes | None, secret: bytes) -> str | None:
        found = None
        for known_name, known_secret in self._secrets:
            # Both comparisons always run: no early exit that would time the user name.
            name_matches = name is None or hmac.compare_digest(known_name, name)
            secret_matches = hmac.compare_digest(known_secret, secret)
            if name_matches and secret_matches:
                found = known_name.decode()
        return found


def _numbered(tokens: Iterable[str]) -> dict[str, str]:
    return {f"token#{index}": token for index, token in enumerate(tokens, start=1)}


class Authenticator:
    def __init__(self, settings: AuthSettings, jwt_verifier: TokenVerifier | None = None) -> None:
        self.settings = settings
        self._webhook_users = _PlainSecrets(settings.webhook_basic_users)
        self._flower_users = _PlainSecrets(settings.basic_users)
        self._passwords = PasswordChecker(settings.password_users) if settings.password_users else None
        self._webhook_tokens = _PlainSecrets(_numbered(settings.webhook_bearer_tokens))
        self._tokens = _PlainSecrets(_numbered(settings.bearer_tokens))
        self._jwt = jwt_verifier

    def needs_credentials(self, access: Access) -> bool:
        if not self.settings.enabled or access is Access.OPEN:
            return False
        return access is not Access.METRICS or self.settings.protect_metrics

    async def authenticate(self, authorization: str) -> Principal | Refusal:
        """The principal the ``Authorization`` header proves, or why it proves nothing."""
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            return await self._basic(credentials.strip())
        if scheme == "bearer":
            return await self._bearer(credentials.strip())
        return Refusal(f"unsupported authorization scheme {scheme[:20]!r}")

    async def _basic(self, credentials: str) -> Principal | Refusal:
        user_and_password = basic_credentials(credentials)
        if user_and_password is None:
            return Refusal("malformed basic credentials")
        user, password = user_and_password
        return await self.password(user, password, webhook=True) or Refusal("wrong user or password", user)

    async def password(self, user: str, password: str, *, webhook: bool) -> Principal | None:
        """The principal a user name and password prove; the webhook's users only if ``webhook``
        (they never log in to the console)."""
        user_bytes, secret = user.encode(), password.encode()
        if webhook and (found := self._webhook_users.find(user_bytes, secret)) is not None:
            return Principal(found, "webhook-basic", frozenset({Role.WEBHOOK}))
        if (found := self._flower_users.find(user_bytes, secret)) is not None:
            return Principal(found, "basic", self.settings.roles.roles_of(found) or ALL_ROLES)
        if self._passwords is not None and await self._passwords.check(user, secret):
            return Principal(user, "basic", self.roles_of_person(user))
        return None

    async def _bearer(self, token: str) -> Principal | Refusal:
        if not token:
            return Refusal("empty bearer token")
        # aiohttp hands header bytes that are not UTF-8 over as surrogate escapes: back to bytes.
        secret = token.encode("utf-8", "surrogateescape")
        if (found := self._webhook_tokens.find(None, secret)) is not None:
            return Principal(found, "webhook-bearer", frozenset({Role.WEBHOOK}))
        if (found := self._tokens.find(None, secret)) is not None:
            return Principal(found, "bearer", ALL_ROLES)
        if self._jwt is None or token.count(".") != 2 or not token.isascii():
            return Refusal("unknown bearer token")
        try:
            claims = await self._jwt.verify(token)
        except TokenError as exc:
            return Refusal(f"JWT refused: {exc}")
        except ProviderError as exc:
            return Refusal(f"cannot verify the JWT now: {exc}", unavailable=True)
        name = claims.get("client_id") or claims.get("sub") or "unknown"
        return Principal(str(name), "jwt", self._scope_roles(claims))

    def _scope_roles(self, claims: Mapping[str, Any]) -> frozenset[Role]:
        """Roles from the ``scope`` claim (space-separated, RFC 9068) or ``scp`` (a list, Okta)."""
        scopes = claims.get("scope", claims.get("scp", ""))
        names = scopes.split() if isinstance(scopes, str) else [s for s in scopes if isinstance(s, str)] \
            if isinstance(scopes, list) else []
        assert self.settings.jwt is not None
        mapping = self.settings.jwt.scope_roles
        return expand(frozenset().union(*(mapping[name] for name in names if name in mapping)))

    def roles_of_person(self, name: str, groups: Iterable[str] = ()) -> frozenset[Role]:
        """A person's roles: from ``--roles`` (their name, email or groups), else the default role."""
        mapped = self.settings.roles.roles_of(name, groups)
        if mapped is not None:
            return mapped
        default = self.settings.default_role
        return expand({default}) if default is not None else frozenset()

    def challenge(self) -> dict[str, str]:
        """The ``WWW-Authenticate`` header of a 401, offering the schemes configured."""
        settings = self.settings
        schemes = []
        if settings.basic_users or settings.password_users or settings.webhook_basic_users:
            schemes.append(f'Basic realm="{REALM}"')
        if settings.bearer_tokens or settings.webhook_bearer_tokens or settings.jwt:
            schemes.append(f'Bearer realm="{REALM}"')
        return {"WWW-Authenticate": ", ".join(schemes or [f'Basic realm="{REALM}"'])}

    def close(self) -> None:
        if self._passwords is not None:
            self._passwords.close()


def basic_credentials(encoded: str) -> tuple[str, str] | None:
    """``user``, ``password`` from the base64 of HTTP basic auth, or None if malformed."""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, separator, password = decoded.partition(":")
    return (user, password) if separator else None


def basic_user(authorization: str | None) -> str | None:
    """The user name a basic ``Authorization`` header tries (for throttling), if it is one."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    found = basic_credentials(credentials.strip())
    return found[0] if found else None


def parse_basic_auth(spec: str) -> dict[str, str]:
    """``user:pass[,user:pass...]`` → {user: password}; errors name the entry (never the password)."""
    users: dict[str, str] = {}
    for position, entry in enumerate(spec.split(","), start=1):
        user, separator, password = entry.strip().partition(":")
        if not separator or not user or not password:
            raise ValueError(f"entry {position} ({user or 'empty'}): expected user:password")
        if user in users:
            raise ValueError(f"entry {position}: user {user!r} is listed twice")
        users[user] = password
    return users


def load_bearer_tokens(path: Path) -> tuple[str, ...]:
    """One token per line; blank lines and lines starting with # are ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read bearer token file {path}: {exc}") from None
    tokens = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not tokens:
        raise ValueError(f"bearer token file {path} holds no token")
    for number, token in enumerate(tokens, start=1):
        if any(ch.isspace() for ch in token):
            raise ValueError(f"bearer token file {path}: token {number} contains whitespace")
    return tokens
