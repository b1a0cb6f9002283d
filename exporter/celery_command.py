"""``celery -A proj exporter`` / ``celery --broker=URL exporter``, the way ``celery flower`` works.

The broker URL (and kombu's ``global_keyprefix``) come from the Celery app unless a flag or an
environment variable gives them; every other flag is the same as ``autopilot-exporter``'s.
"""
from __future__ import annotations

import click
from celery.bin.base import CeleryCommand

from . import cli


def app_fallbacks(app) -> dict[str, str]:
    """What the Celery app says about the broker, as flag values."""
    fallbacks = {"broker_url": app.connection_for_write().as_uri(include_password=True)}
    prefix = (app.conf.broker_transport_options or {}).get("global_keyprefix")
    if prefix:
        fallbacks["redis_key_prefix"] = str(prefix)
    exchange = app.conf.event_exchange
    if exchange:
        fallbacks["events_exchange"] = str(exchange)
    return fallbacks


@click.command(cls=CeleryCommand, context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("exporter_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exporter(ctx: click.Context, exporter_args: tuple[str, ...]) -> None:
    """Prometheus exporter for Celery (flags: celery exporter --help)."""
    if "--help" in exporter_args or "-h" in exporter_args:
        ctx.exit(cli.main(exporter_args, prog="celery exporter"))
    ctx.exit(cli.main(exporter_args, prog="celery exporter", fallbacks=app_fallbacks(ctx.obj.app)))
