"""The actuator's settings: plain typed objects, built by ``cli.py`` and passed down.

Nothing below the CLI reads the environment or ``sys.argv``; every knob arrives here.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .roles import Role, RoleMap

DEFAULT_PORT = 9809
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_QUEUES = ("celery",)
# Flower API commands that are refused (403) unless ``--allow-api`` names them.
GATED_API_COMMANDS = ("pool_restart", "shutdown", "revoke")


@dataclass(frozen=True)
class ThrottleSettings:
    """Failed logins: ``burst`` at once per client address and per user name, then one more every
    ``interval`` seconds (``--auth-failure-burst``, ``--auth-failure-interval``)."""

    burst: int = 10
    interval: float = 30.0


@dataclass(frozen=True)
class JwtSettings:
    """Machines' JWT access tokens (RFC 9068), e.g. Alertmanager's ``http_config.oauth2``.

    A token is accepted when signed by a key of the issuer's JWKS (``jwks_url``, else the one its
    discovery document names) with one of ``algorithms``, issued by ``issuer`` for ``audience``,
    and current. Its roles are those ``scope_roles`` gives the scopes it carries.
    """

    issuer: str
    audience: str
    jwks_url: str | None = None
    algorithms: tuple[str, ...] = ("RS256",)
    scope_roles: Mapping[str, frozenset[Role]] = field(default_factory=lambda: {"webhook": frozenset({Role.WEBHOOK})})


@dataclass(frozen=True)
class OidcSettings:
    """People log in at an OpenID Connect provider found by its discovery URL."""

    discovery_url: str
    client_id: str
    client_secret: str = field(repr=False, default="")
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    groups_claim: str = "groups"
    # None: what discovery says the provider signs ID tokens with (asymmetric algorithms only).
    algorithms: tuple[str, ...] | None = None
    label: str = "OpenID Connect"


@dataclass(frozen=True)
class GithubSettings:
    """People log in with GitHub's OAuth apps (not OpenID Connect), as Flower does."""

    client_id: str
    client_secret: str = field(repr=False, default="")
    url: str = "https://github.com"
    api_url: str = "https://api.github.com"


@dataclass(frozen=True)
class SessionSettings:
    """The console's session cookie: encrypted and signed with ``secret`` (32 bytes; random per
    process unless ``--session-secret-file``), valid ``max_age`` seconds."""

    secret: bytes = field(repr=False, default=b"")
    max_age: float = 8 * 3600.0


@dataclass(frozen=True)
class AuthSettings:
    """Who may call the actuator, and as what (see :mod:`actuator.roles`).

    ``basic_users`` (Flower's ``--basic-auth`` spelling) and ``bearer_tokens`` are the first
    credentials the actuator had; they keep every role (webhook included) unless ``roles`` names
    the user. ``password_users`` are bcrypt hashes from a web-config file (people: their roles from
    ``roles``, else ``default_role``). ``webhook_basic_users`` and ``webhook_bearer_tokens`` may
    only post webhooks. ``jwt`` verifies machines' access tokens; ``oidc`` and ``github`` log
    people in, subject to ``allowed_emails``. ``enabled`` is False only when the operator asked to
    run open (``--no-auth``).
    """

    basic_users: Mapping[str, str] = field(default_factory=dict)
    bearer_tokens: tuple[str, ...] = ()
    password_users: Mapping[str, bytes] = field(default_factory=dict)
    webhook_basic_users: Mapping[str, str] = field(default_factory=dict)
    webhook_bearer_tokens: tuple[str, ...] = ()
    roles: RoleMap = field(default_factory=RoleMap)
    default_role: Role | None = Role.VIEWER
    jwt: JwtSettings | None = None
    oidc: OidcSettings | None = None
    github: GithubSettings | None = None
    allowed_emails: re.Pattern[str] | None = None
    # Trusted for calls to the identity provider (discovery, JWKS, tokens); None: the system's CAs.
    provider_ca_file: Path | None = None
    public_url: str | None = None
    session: SessionSettings = field(default_factory=SessionSettings)
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    enabled: bool = True
    protect_metrics: bool = False

    @property
    def people_log_in(self) -> bool:
        """Whether the console offers a login page (passwords or a provider)."""
        return bool(self.basic_users or self.password_users or self.oidc or self.github)


@dataclass(frozen=True)
class TlsSettings:
    """HTTPS for the actuator; with ``client_ca`` every client must present a certificate it signed."""

    certfile: Path
    keyfile: Path
    client_ca: Path | None = None


@dataclass(frozen=True)
class ControlSettings:
    """How the actuator talks to workers over Celery remote control.

    ``reply_timeout`` bounds the wait for a command's replies and ``inspect_timeout`` the wait
    for inspection replies; both stop early once every expected worker answered.
    ``discovery_interval`` is how often the set of live workers is refreshed in the background,
    so that "every worker" inspections know how many replies to expect.
    """

    broker_url: str | None = None
    reply_timeout: float = 1.0
    inspect_timeout: float = 1.0
    broker_connect_timeout: float = 2.0
    discovery_interval: float = 30.0


@dataclass(frozen=True)
class GuardSettings:
    """Where the guards keep their memory, and how long they remember.

    ``state_url`` (Redis) shares it between replicas; without it an SQLite file ``state_db``
    (default: next to the audit log) serves one replica. ``idempotency_ttl`` is how long a
    handled notification is remembered; ``pool_settle_time`` how long the pool size asked of a
    worker stands in for the live one (a prefork pool starts new processes 0-5 s after
    ``pool_grow`` answers).
    """

    state_url: str | None = None
    state_db: Path | None = None
    state_key_prefix: str = "autopilot-actuator:"
    idempotency_ttl: float = 24 * 3600.0
    pool_settle_time: float = 10.0


@dataclass(frozen=True)
class RetentionSettings:
    """How much of the audit log is kept (None: no limit), pruned every ``prune_interval`` s."""

    max_age: float | None = 30 * 86400.0
    max_rows: int | None = 100_000
    prune_interval: float = 300.0


@dataclass(frozen=True)
class Settings:
    """Everything ``autopilot-actuator serve`` needs."""

    rules_path: Path
    control: ControlSettings = field(default_factory=ControlSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings | None = None
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    audit_db: Path = Path("autopilot-actuator.sqlite3")
    dry_run: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # The read API: queues always listed besides those workers consume, and how old an
    # inspection ``GET /api/workers`` may answer from (``?refresh=1`` always inspects).
    queues: tuple[str, ...] = DEFAULT_QUEUES
    workers_max_age: float = 2.0
    # Which of GATED_API_COMMANDS the Flower API may send.
    allow_api: frozenset[str] = frozenset()
    guards: GuardSettings = field(default_factory=GuardSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    # How often the console's live view is refreshed.
    console_interval: float = 2.0

    @property
    def state_db(self) -> Path:
        """The embedded guard state: ``--state-db``, else next to the audit log
        (``audit.sqlite3`` → ``audit.state.sqlite3``)."""
        if self.guards.state_db is not None:
            return self.guards.state_db
        return self.audit_db.with_name(f"{self.audit_db.stem}.state{self.audit_db.suffix or '.sqlite3'}")
