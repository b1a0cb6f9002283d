"""HTTP: ``/metrics`` rendered from memory, ``/healthz``, and a small index page at ``/``; TLS and
basic auth come from a web config (``--web.config.file``)."""
from __future__ import annotations

import html
from collections.abc import Callable

from aiohttp import web

from .render import CONTENT_TYPE
from .web_access import middlewares
from .web_config import WebConfig

OPEN_PATHS = frozenset({"/healthz"})

_INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>celery-autopilot exporter</title></head>
<body><h1>celery-autopilot exporter</h1>
<p>Broker: {broker}</p>
<ul><li><a href="metrics">/metrics</a> Prometheus metrics</li>
<li><a href="healthz">/healthz</a> 200 while the broker is connected, 503 otherwise</li></ul>
</body></html>
"""


def make_app(render_metrics: Callable[[], str], broker_connected: Callable[[], bool],
             broker_display: str, web_config: WebConfig | None = None) -> web.Application:
    """The web application; ``render_metrics`` must not wait on the broker or on workers.

    With a web config's ``basic_auth_users``, ``/metrics`` and ``/`` need credentials; ``/healthz``
    stays open (it tells only whether the broker is connected) so that orchestrators can probe it.
    """

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=render_metrics().encode(), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(request: web.Request) -> web.Response:
        if broker_connected():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="broker not connected\n")

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=_INDEX.format(broker=html.escape(broker_display)), content_type="text/html")

    app = web.Application(middlewares=middlewares(web_config, OPEN_PATHS) if web_config else ())
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", index)
    return app
