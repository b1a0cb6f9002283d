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
