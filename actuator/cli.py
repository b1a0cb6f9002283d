"""``autopilot-actuator serve|check``: flags and environment variables → :class:`Settings`.

Every flag ``--some-flag`` also reads the environment variable ``AUTOPILOT_ACTUATOR_SOME_FLAG``.
This is the only module that reads flags or the environment; it builds the settings and hands
them to ``server.serve`` or ``check.run_check``.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import commands
from .audit import AuditLogError
from .check import run_check
from .cli_access import access_options, auth_settings, tls_settings
from .durations import parse_duration
from .guard_state import StateStoreError
from .rule_file import RuleFileError
from .server import TlsError, serve
from .settings import (
    DEFAULT_BROKER_URL, DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT, DEFAULT_QUEUES, GATED_API_COMMANDS, ControlSettings,
    GuardSettings, RetentionSettings, Settings,
)

ENV_PREFIX = "AUTOPILOT_ACTUATOR_"
F = Callable[..., Any]


def option(*declarations: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option that also reads ``AUTOPILOT_ACTUATOR_<FLAG>`` and shows its default."""
    flag = next(d for d in declarations if d.startswith("--")).split("/")[0]
    envvar = ENV_PREFIX + flag[2:].upper().replace("-", "_")
    return click.option(*declarations, envvar=envvar, show_envvar=True, show_default=True, **kwargs)


_SECONDS = click.FloatRange(min=0.01)
STATE_URL_SCHEMES = ("redis://", "rediss://", "unix://")


class Duration(click.ParamType):
    """``90s``, ``5m``, ``1h30m``, ``30d`` or a number of seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(f"got {value!r}; expected {exc}", param, ctx)


DURATION = Duration()

INSPECT_TIMEOUT_OPTION = option(
    "--inspect-timeout", type=_SECONDS, default=1.0,
    help="Seconds to wait for inspection replies (stops early once every expected worker answered).")

SERVE_OPTIONS: list[Callable[[F], F]] = [
    option("--rules", "rules_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
           help="YAML rule file; the server does not start if it has any error."),
    option("--broker-url", default=None,
           help=f"Celery broker URL. Default: the Celery app's broker under `celery actuator`, "
                f"else {DEFAULT_BROKER_URL}."),
    option("--host", default="0.0.0.0", help="Address to listen on."),
    option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, help="Port to listen on."),
    *access_options(option, DURATION),
    option("--reply-timeout", type=_SECONDS, default=1.0,
           help="Seconds to wait for workers' replies to a command (stops early once all answered)."),
    INSPECT_TIMEOUT_OPTION,
    option("--broker-connect-timeout", type=_SECONDS, default=2.0,
           help="Seconds to try reaching the broker before answering 503."),
    option("--discovery-interval", type=_SECONDS, default=30.0,
           help="Seconds between background refreshes of the set of live workers."),
    option("--audit-db", type=click.Path(dir_okay=False, path_type=Path),
           default=Path("autopilot-actuator.sqlite3"), help="SQLite file of the audit log."),
    option("--dry-run", is_flag=True, default=False,
           help="Decide and record everything, send nothing to workers."),
    option("--max-body-bytes", type=click.IntRange(min=1024), default=DEFAULT_MAX_BODY_BYTES,
           help="Largest request body accepted; larger ones get 413."),
    option("--queues", default=None, metavar="NAME[,NAME...]",
           help=f"Queues GET /api/queues always lists, besides those workers consume. Default: the Celery "
                f"app's default and configured queues under `celery actuator`, else {','.join(DEFAULT_QUEUES)}."),
    option("--workers-max-age", type=click.FloatRange(min=0), default=2.0,
           help="Seconds GET /api/workers may answer from an earlier inspection (0: always inspect; "
                "?refresh=1 always inspects)."),
    option("--allow-api", default="", metavar="COMMAND[,COMMAND...]",
           help=f"Flower API commands to allow among {', '.join(GATED_API_COMMANDS)}; "
                f"those not listed answer 403 (and are audited)."),
    option("--state-url", default=None, metavar="redis://HOST:PORT/DB",
           help="Keep the guard state (idempotency keys, cooldowns, budgets, pause) in Redis, shared by "
                "every replica given the same URL. Default: an embedded SQLite file (one replica)."),
    option("--state-db", type=click.Path(dir_okay=False, path_type=Path), default=None,
           help="SQLite file of the guard state without --state-url. Default: next to --audit-db "
                "(autopilot-actuator.state.sqlite3)."),
    option("--state-key-prefix", default=GuardSettings.state_key_prefix,
           help="Prefix of every Redis key of the guard state (replicas acting together share it)."),
    option("--idempotency-ttl", type=DURATION, default="24h",
           help="How long a handled notification (fingerprint, startsAt, status) is remembered."),
    option("--pool-settle-time", type=DURATION, default="10s",
           help="How long the pool size asked of a worker stands in for the inspected one "
                "(prefork starts new processes 0-5 s after pool_grow answers)."),
    option("--audit-max-age", type=DURATION, default="30d",
           help="Audit records older than this are pruned; 0 keeps them forever."),
    option("--audit-max-rows", type=click.IntRange(min=0), default=RetentionSettings.max_rows,
           help="At most this many notifications and this many decisions are kept; 0: no limit."),
    option("--prune-interval", type=DURATION, default="5m",
           help="How often the audit log and the guard state are pruned."),
    option("--console-interval", type=DURATION, default="2s",
           help="How often the console's live view refreshes (at least 0.2 s)."),
    option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
           default="INFO", help="Logging level."),
]


def serve_options(command: F) -> F:
    for decorate in reversed(SERVE_OPTIONS):
        command = decorate(command)
    return command


def build_settings(options: dict[str, Any], default_broker: str | None,
                   default_queues: tuple[str, ...] = DEFAULT_QUEUES) -> Settings:
    """Settings from parsed options; a usage error names the flag at fault."""
    auth = auth_settings(options)
    control = ControlSettings(
        broker_url=options["broker_url"] or default_broker,
        reply_timeout=options["reply_timeout"],
        inspect_timeout=options["inspect_timeout"],
        broker_connect_timeout=options["broker_connect_timeout"],
        discovery_interval=options["discovery_interval"],
    )
    queues = _names(options["queues"], "--queues") if options["queues"] is not None else default_queues
    return Settings(rules_path=options["rules_path"], control=control, auth=auth, tls=tls_settings(options),
                    console_interval=_at_least(options, "console_interval", 0.2), host=options["host"],
                    port=options["port"], audit_db=options["audit_db"], dry_run=options["dry_run"],
                    max_body_bytes=options["max_body_bytes"], queues=queues,
                    workers_max_age=options["workers_max_age"], allow_api=_allowed_api(options["allow_api"]),
                    guards=_guard_settings(options),
                    retention=RetentionSettings(max_age=options["audit_max_age"] or None,
                                                max_rows=options["audit_max_rows"] or None,
                                                prune_interval=_at_least(options, "prune_interval", 1.0)))


def _at_least(options: dict[str, Any], key: str, minimum: float) -> float:
    if options[key] < minimum:
        raise click.BadParameter(f"got {options[key]:g} seconds; expected at least {minimum:g}",
                                 param_hint="--" + key.replace("_", "-"))
    return options[key]


def _guard_settings(options: dict[str, Any]) -> GuardSettings:
    url = options["state_url"]
    if url is not None and not url.startswith(STATE_URL_SCHEMES):
        raise click.BadParameter(f"got {url!r}; expected a Redis URL ({', '.join(STATE_URL_SCHEMES)})",
                                 param_hint="--state-url")
    if url is not None and options["state_db"] is not None:
        raise click.UsageError("--state-db contradicts --state-url; the guard state is in one place")
    return GuardSettings(state_url=url or None, state_db=options["state_db"],
                         state_key_prefix=options["state_key_prefix"],
                         idempotency_ttl=_at_least(options, "idempotency_ttl", 1.0),
                         pool_settle_time=_at_least(options, "pool_settle_time", 0.1))


def _names(text: str, flag: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    for name in names:
        try:
            commands.name(name)
        except ValueError as exc:
            raise click.BadParameter(f"{name!r}: expected {exc}", param_hint=flag) from None
    return names


def _allowed_api(text: str) -> frozenset[str]:
    allowed = frozenset(_names(text, "--allow-api"))
    unknown = sorted(allowed - set(GATED_API_COMMANDS))
    if unknown:
        raise click.BadParameter(f"{', '.join(map(repr, unknown))}: expected a comma-separated list of "
                                 f"{', '.join(GATED_API_COMMANDS)} (the other commands are always allowed)",
                                 param_hint="--allow-api")
    return allowed


def app_queues(app: Any) -> tuple[str, ...]:
    """The queues a Celery app routes to by default or declares, as Flower lists them."""
    return tuple(dict.fromkeys([app.conf.task_default_queue, *app.amqp.queues]))


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def start(options: dict[str, Any], default_broker: str | None, celery_app: Any = None) -> None:
    """Build the settings and serve; a broken rule file, an audit log or guard state that cannot
    be opened or a port that cannot be bound exits with status 1 and the reason."""
    settings = build_settings(options, default_broker,
                              app_queues(celery_app) if celery_app is not None else DEFAULT_QUEUES)
    configure_logging(options["log_level"])
    try:
        serve(settings, celery_app)
    except (RuleFileError, AuditLogError, StateStoreError, TlsError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: cannot listen on {settings.host}:{settings.port}: {exc}", err=True)
        sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """celery-autopilot actuator: Alertmanager webhooks → rules → Celery remote control."""


@main.command("serve")
@serve_options
def serve_command(**options: Any) -> None:
    """Run the actuator's HTTP server."""
    start(options, DEFAULT_BROKER_URL)


@main.command("check")
@option("--rules", "rules_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
        help="YAML rule file to check.")
@click.argument("payload", type=click.Path(dir_okay=False, path_type=Path))
@option("--broker-url", default=None,
        help="Celery broker URL; when given, targets are resolved by live inspection (nothing is sent).")
@INSPECT_TIMEOUT_OPTION
@option("--json", "as_json", is_flag=True, default=False, help="Print the result as JSON.")
def check_command(rules_path: Path, payload: Path, broker_url: str | None, inspect_timeout: float,
                  as_json: bool) -> None:
    """Show what the rules would do with PAYLOAD (an Alertmanager webhook body); send nothing.

    Targets are resolved by live inspection only when --broker-url is given. Exit status 1 when
    the rule file, the payload or any matching action is broken.
    """
    control = (ControlSettings(broker_url=broker_url, inspect_timeout=inspect_timeout)
               if broker_url else None)
    sys.exit(run_check(rules_path, payload, control, as_json, sys.stdout))
