"""A /metrics endpoint serving whatever text a function renders at scrape time."""
from __future__ import annotations

from typing import Callable

from aiohttp import web

from .background_http import BackgroundApp


class MetricsTarget(BackgroundApp):
    """Serves ``render()`` in the Prometheus text format; swap ``render`` to change the story."""

    def __init__(self, render: Callable[[], str]) -> None:
        self.render = render
        self.scrapes = 0
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        super().__init__(app)

    async def _metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        return web.Response(text=self.render(), content_type="text/plain", charset="utf-8")
