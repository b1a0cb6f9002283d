"""Who is calling, and whether they may.

Credentials are what Alertmanager's ``http_config`` sends: HTTP basic auth (several users, in
Flower's ``--basic-auth user:pass,user:pass`` spelling) and bearer tokens (one per line of a
file). Every comparison runs in constant time over every configured credential, so timing
reveals neither which user exists nor how much of a password matched.

Each route declares the access it needs (:class:`Access`); anything undeclared needs the
strictest. Today every authenticated principal may do everything; roles (viewer for
``READ``, operator for ``WRITE``) and other authenticators (JWT, OIDC sessions) plug in as
further :class:`Principal` sources and a per-access check.
"""
from __future__ import annotations

import base64
import binascii
import enum
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .settings import AuthSettings

REALM = "celery-autopilot"
F = TypeVar("F", bound=Callable[..., Any])


class Access(enum.Enum):
    OPEN = "open"          # health checks
    METRICS = "metrics"    # /metrics: open unless --metrics-auth
    READ = "read"          # status page, rules, audit log, read API
    WRITE = "write"        # webhook and remote control


def requires(access: Access) -> Callable[[F], F]:
    """Declare the access a request handler needs."""
    def mark(handler: F) -> F:
        handler.access = access  # type: ignore[attr-defined]
        return handler
    return mark


def access_of(handler: Any) -> Access:
    return getattr(handler, "access", Access.WRITE)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, named for the audit log (never with its secret)."""

    name: str
    method: str

    def describe(self) -> str:
        return f"{self.method}:{self.name}"


ANONYMOUS = Principal("anonymous", "none")


class Authenticator:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._users = [(user.encode(), password.encode()) for user, password in settings.basic_users.items()]
        self._tokens = [token.encode() for token in settings.bearer_tokens]

    def needs_credentials(self, access: Access) -> bool:
        if not self.settings.enabled or access is Access.OPEN:
            return False
        return access is not Access.METRICS or self.settings.protect_metrics

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal the ``Authorization`` header proves, or None."""
        if not authorization:
            return None
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            return self._basic(credentials.strip())
        if scheme == "bearer":
            # aiohttp hands header bytes that are not UTF-8 over as surrogate escapes: back to bytes.
            return self._bearer(credentials.strip().encode("utf-8", "surrogateescape"))
        return None

    def _basic(self, credentials: str) -> Principal | None:
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return None
        user, separator, password = decoded.partition(b":")
        if not separator:
            return None
        found = None
        for known_user, known_password in self._users:
            # Both comparisons always run: no early exit that would time the user name.
            user_matches = hmac.compare_digest(known_user, user)
            password_matches = hmac.compare_digest(known_password, password)
            if user_matches and password_matches:
                found = known_user
        return Principal(found.decode(), "basic") if found is not None else None

    def _bearer(self, token: bytes) -> Principal | None:
        found = None
        for index, known in enumerate(self._tokens, start=1):
            if hmac.compare_digest(known, token):
                found = index
        return Principal(f"token#{found}", "bearer") if found is not None else None

    def challenge(self) -> dict[str, str]:
        """The ``WWW-Authenticate`` header of a 401, offering the schemes configured."""
        schemes = []
        if self._users or not self._tokens:
            schemes.append(f'Basic realm="{REALM}"')
        if self._tokens:
            schemes.append(f'Bearer realm="{REALM}"')
        return {"WWW-Authenticate": ", ".join(schemes)}


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
