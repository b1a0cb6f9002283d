"""The actuator's settings: plain typed objects, built by ``cli.py`` and passed down.

Nothing below the CLI reads the environment or ``sys.argv``; every knob arrives here.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 9809
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_QUEUES = ("celery",)
# Flower API commands that are refused (403) unless ``--allow-api`` names them.
GATED_API_COMMANDS = ("pool_restart", "shutdown", "revoke")


@dataclass(frozen=True)
class AuthSettings:
    """Who may call the actuator.

    ``basic_users`` maps user name to password (Flower's ``--basic-auth`` spelling);
    ``bearer_tokens`` are opaque tokens as Alertmanager's ``http_config.authorization`` sends them.
    ``enabled`` is False only when the operator explicitly asked to run open (``--no-auth``).
    """

    basic_users: Mapping[str, str] = field(default_factory=dict)
    bearer_tokens: tuple[str, ...] = ()
    enabled: bool = True
    protect_metrics: bool = False


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

    @property
    def state_db(self) -> Path:
        """The embedded guard state: ``--state-db``, else next to the audit log
        (``audit.sqlite3`` → ``audit.state.sqlite3``)."""
        if self.guards.state_db is not None:
            return self.guards.state_db
        return self.audit_db.with_name(f"{self.audit_db.stem}.state{self.audit_db.suffix or '.sqlite3'}")
