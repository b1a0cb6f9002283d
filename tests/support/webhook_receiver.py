"""A stand-in webhook endpoint that records exactly what Alertmanager posts to it."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from .background_http import BackgroundApp
from .polling import wait_for


@dataclass(frozen=True)
class Notification:
    """One POST: its headers, its raw body and the body parsed as JSON."""

    headers: dict[str, str]
    raw: bytes
    body: Any

    @property
    def alertnames(self) -> list[str]:
        return [alert["labels"]["alertname"] for alert in self.body.get("alerts", [])]


class WebhookReceiver(BackgroundApp):
    """Answers ``POST {path}`` with 200 and keeps every notification, in arrival order."""

    def __init__(self, path: str = "/webhook") -> None:
        self.path = path
        self._lock = threading.Lock()
        self._received: list[Notification] = []
        app = web.Application()
        app.router.add_post(path, self._handle)
        super().__init__(app)

    @property
    def url(self) -> str:
        return f"{self.base_url}{self.path}"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        notification = Notification(headers=dict(request.headers), raw=raw, body=json.loads(raw))
        with self._lock:
            self._received.append(notification)
        return web.json_response({"status": "recorded"})

    @property
    def notifications(self) -> list[Notification]:
        with self._lock:
            return list(self._received)

    def wait_for(
        self, match: Callable[[Notification], bool], *, timeout: float = 30.0, what: str = "a notification",
    ) -> Notification:
        """The first notification (already received or arriving before ``timeout``) that matches."""
        def found() -> Notification | None:
            return next((n for n in self.notifications if match(n)), None)
        return wait_for(found, timeout=timeout, interval=0.1, what=what)
