"""``celery actuator``: the actuator as a Celery subcommand, the way ``celery flower`` works.

``celery -A proj actuator --rules rules.yml ...`` talks to the broker of ``proj`` with its
configuration (transport options, SSL); ``celery --broker=URL actuator`` uses that URL. An
explicit ``--broker-url`` wins over both. The flags are those of ``autopilot-actuator serve``.
"""
from __future__ import annotations

from typing import Any

import click
from celery.bin.base import CeleryCommand

from .cli import serve_options, start


@click.command(cls=CeleryCommand)
@serve_options
@click.pass_context
def actuator(ctx: click.Context, **options: Any) -> None:
    """Run the celery-autopilot actuator (Alertmanager webhooks → Celery remote control)."""
    start(options, default_broker=None, celery_app=ctx.obj.app)
