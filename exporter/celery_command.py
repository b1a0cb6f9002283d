"""``celery -A proj exporter`` / ``celery --broker=URL exporter``, the way ``celery flower`` works.

The broker URL (as written in the app's configuration, failover list and query string included),
kombu's ``global_keyprefix`` and the event and control exchanges come from the Celery app unless
a flag or an environment variable gives them; so do the app's connection settings that have no
flag (``broker_use_ssl``, transport options, serializers, ...: ``CELERY_CONNECTION_SETTINGS``).
Every flag is the same as ``autopilot-exporter``'s.
"""
from __future__ import annotations

from typing import Any

import click
from celery import Celery
from celery.bin.base import CeleryCommand

from . import cli
from .settings import CELERY_CONNECTION_SETTINGS


def _broker_url(app: Celery) -> str:
    url = app.conf.broker_url
    if isinstance(url, (list, tuple)):
        return ";".join(url)
    # Without a broker_url: Celery's default broker, or the one broker_host & co describe.
    return url or app.connection_for_write().as_uri(include_password=True)


def app_fallbacks(app: Celery) -> dict[str, str]:
    """What the Celery app says about the broker, as flag values."""
    fallbacks = {"broker_url": _broker_url(app)}
    prefix = (app.conf.broker_transport_options or {}).get("global_keyprefix")
    if prefix:
        fallbacks["redis_key_prefix"] = str(prefix)
    for flag, setting in (("events_exchange", "event_exchange"), ("control_exchange", "control_exchange")):
        if app.conf.get(setting):
            fallbacks[flag] = str(app.conf.get(setting))
    return fallbacks


def app_celery_config(app: Celery) -> dict[str, Any]:
    """The app's connection settings, for the exporter's own Celery app."""
    return {name: app.conf.get(name) for name in CELERY_CONNECTION_SETTINGS}


@click.command(cls=CeleryCommand, context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("exporter_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exporter(ctx: click.Context, exporter_args: tuple[str, ...]) -> None:
    """Prometheus exporter for Celery (flags: celery exporter --help)."""
    if "--help" in exporter_args or "-h" in exporter_args:
        ctx.exit(cli.main(exporter_args, prog="celery exporter"))
    app = ctx.obj.app
    ctx.exit(cli.main(exporter_args, prog="celery exporter", fallbacks=app_fallbacks(app),
                      celery_config=app_celery_config(app)))
