"""Command line: flags and environment variables -> Settings -> ``service.run``.

Every flag ``--some-flag`` can also be set as ``AUTOPILOT_EXPORTER_SOME_FLAG``; a flag wins over
the environment. A bad value, from either, is reported with its source and exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .settings import DEFAULT_QUEUE_WAIT_BUCKETS, DEFAULT_RUNTIME_BUCKETS, Settings
from .web_config import load_web_config

ENV_PREFIX = "AUTOPILOT_EXPORTER_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")


def _finite(text: str) -> float:
    """A float that is a number: inf would stop a poller for good, nan breaks every comparison."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _positive_float(text: str) -> float:
    value = _finite(text)
    if not value > 0:
        raise ValueError(f"{text!r} is not a positive number of seconds")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"{text!r} is not a positive integer")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError(f"{text!r} is not a TCP port (1-65535)")
    return value


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _buckets(text: str) -> tuple[float, ...]:
    bounds = tuple(_finite(part) for part in _names(text))
    if not bounds or any(b <= 0 for b in bounds) or list(bounds) != sorted(set(bounds)):
        raise ValueError(f"{text!r} is not a list of increasing positive bucket bounds, e.g. 0.1,0.5,1")
    return bounds


def _heartbeat_timeout(text: str) -> float | None:
    return None if text.strip().lower() == "auto" else _positive_float(text)


def _choice(choices: Sequence[str], upper: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.upper() if upper else text.lower()
        if value not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return value
    return parse


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


@dataclass(frozen=True)
class Option:
    field: str
    parse: Callable[[str], Any]
    default: str  # as it is written on the command line and in the README
    help: str
    # The flag's spelling when it is not the field's (exporter-toolkit's --web.config.file).
    spelling: str | None = None

    @property
    def flag(self) -> str:
        return self.spelling or "--" + self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + re.sub(r"[.-]", "_", self.flag[2:]).upper()


def _csv(values: Sequence[float]) -> str:
    return ",".join(f"{v:g}" for v in values)


OPTIONS: tuple[Option, ...] = (
    Option("broker_url", str, "", "Celery broker URL (redis://, rediss://, amqp://, ...; several separated "
           "by `;` for failover); `celery exporter` takes the app's broker when not given."),
    Option("host", str, "0.0.0.0", "Address the HTTP server listens on."),
    Option("port", _port, "9808", "Port the HTTP server listens on."),
    Option("queues", _names, "celery", "Queues always measured (comma-separated), besides those workers consume "
           "(a queue seen consumed stays measured until nobody consumed it for --purge-after)."),
    Option("events_exchange", str, "celeryev", "Exchange Celery sends events to (`event_exchange`)."),
    Option("control_exchange", str, "celery", "Exchange of Celery's remote control (`control_exchange`), "
           "used to inspect workers."),
    Option("redis_key_prefix", str, "", "kombu's `global_keyprefix` broker transport option, when the app sets one."),
    Option("queue_interval", _positive_float, "5", "Seconds between queue depth polls."),
    Option("inspect_interval", _positive_float, "5", "Seconds between worker inspections."),
    Option("inspect_timeout", _positive_float, "1", "Seconds an inspection waits for replies "
           "(below ~0.9 s replies get lost)."),
    Option("discovery_interval", _positive_float, "30", "Seconds between inspections that wait the full "
           "timeout to discover workers that send no events."),
    Option("heartbeat_timeout", _heartbeat_timeout, "auto", "Seconds of silence before a worker is down; "
           "`auto` = 3 x the worker's announced heartbeat period (`freq`), at most 60."),
    Option("purge_after", _positive_float, "1800", "Seconds a down host keeps its series before they are removed."),
    Option("runtime_buckets", _buckets, _csv(DEFAULT_RUNTIME_BUCKETS), "Bucket bounds of `celery_task_runtime` (seconds)."),
    Option("queue_wait_buckets", _buckets, _csv(DEFAULT_QUEUE_WAIT_BUCKETS),
           "Bucket bounds of `celery_task_queue_wait_time` (seconds)."),
    Option("task_allow", _names, "", "Only count tasks whose name matches one of these shell globs "
           "(comma-separated, e.g. `billing.*`); empty = all."),
    Option("task_deny", _names, "", "Never count tasks whose name matches one of these shell globs."),
    Option("max_series", _positive_int, "10000", "Cap on task series (hostname, name, queue_name); "
           "events for new series beyond it are dropped and counted."),
    Option("max_exception_labels", _positive_int, "20", "Distinct `exception` labels kept per task series; "
           "failures with any further one are counted under `exception=\"other\"`."),
    Option("max_tasks_in_flight", _positive_int, "50000", "Cap on tasks tracked between sent and finished "
           "(about 250 bytes each); the oldest is forgotten first, and counted."),
    Option("generic_hostname_task_sent_metric", _bool, "true", "Label `celery_task_sent_total` with "
           "`hostname=\"generic\"` instead of each producer's node name (`gen<pid>@host`, new with every "
           "process), which would multiply series and memory with producer restarts."),
    Option("max_message_bytes", _positive_int, "1048576", "Larger event messages are skipped (reason too_large)."),
    Option("enable_events", _bool, "false", "Broadcast `enable_events` to all workers every inspection round."),
    Option("reconnect_max_delay", _positive_float, "10", "Cap of the exponential reconnect backoff (seconds)."),
    Option("broker_heartbeat", _positive_float, "5", "Seconds of silence after which the events connection "
           "is probed (Redis: PING; AMQP: heartbeat frames); with no answer within as long again it is "
           "dropped and made anew."),
    Option("log_level", _choice(LOG_LEVELS, upper=True), "INFO", "DEBUG, INFO, WARNING or ERROR."),
    Option("log_format", _choice(LOG_FORMATS), "text", "`text` or `json` (one JSON object per line)."),
    Option("web_config", load_web_config, "", "YAML file in Prometheus exporter-toolkit's web config format: "
           "`tls_server_config` (HTTPS, mutual TLS), `basic_auth_users` (bcrypt hashes), "
           "`http_server_config.headers`, `rate_limit`. Checked at start.", spelling="--web.config.file"),
)


class UsageError(Exception):
    """A flag or environment value that cannot be used; the CLI exits with status 2."""


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Prometheus exporter for Celery: events, queue depths and worker inspection.",
        epilog=f"Every flag can be set as an environment variable: --some-flag as {ENV_PREFIX}SOME_FLAG.",
    )
    for option in OPTIONS:
        if option.parse is _bool:
            parser.add_argument(option.flag, dest=option.field, metavar="BOOL", nargs="?", const="true",
                                help=f"{option.help} Alone it means true. (default: {option.default}) "
                                     f"[env {option.env}]")
        else:
            parser.add_argument(option.flag, dest=option.field, metavar=option.field.upper(),
                                help=f"{option.help} (default: {option.default or 'none'}) [env {option.env}]")
    return parser


def parse_settings(argv: Sequence[str], environ: Mapping[str, str], *, prog: str = "autopilot-exporter",
                   fallbacks: Mapping[str, str] | None = None,
                   celery_config: Mapping[str, Any] | None = None) -> Settings:
    """Settings from flags, then environment, then ``fallbacks`` (the Celery app's), then defaults.

    ``celery_config``: the Celery app's connection settings (see ``CELERY_CONNECTION_SETTINGS``).
    Raises UsageError naming the flag or variable and the value that is wrong.
    """
    parser = _parser(prog)
    args = vars(parser.parse_args(list(argv)))
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if args[option.field] is not None:
            text, source = args[option.field], option.flag
        elif option.env in environ:
            text, source = environ[option.env], option.env
        elif fallbacks and option.field in fallbacks:
            text, source = fallbacks[option.field], "the Celery app"
        else:
            text, source = option.default, f"the default of {option.flag}"
        try:
            values[option.field] = option.parse(text)
        except ValueError as exc:
            raise UsageError(f"{source}: {exc}") from None
    if not values["broker_url"]:
        raise UsageError(f"no broker: pass --broker-url or set {ENV_PREFIX}BROKER_URL")
    return Settings(**values, celery_config=dict(celery_config or {}))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonFormatter() if fmt == "json"
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def main(argv: Sequence[str] | None = None, *, prog: str = "autopilot-exporter",
         fallbacks: Mapping[str, str] | None = None, celery_config: Mapping[str, Any] | None = None) -> int:
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv, os.environ, prog=prog,
                                  fallbacks=fallbacks, celery_config=celery_config)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    from .service import StartupError, run  # imported here so that --help and usage errors stay fast
    try:
        run(settings)
    except StartupError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    return 0

