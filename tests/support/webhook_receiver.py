"""A stand-in webhook endpoint that records exactly what Alertmanager posts to it."""
from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from .background_http import BackgroundApp
from .polling import wait_for
from .tls import peer_common_name


@dataclass(frozen=True)
class Notification:
    """One POST: its headers, its raw body, the body parsed as JSON, and the common name of the
    TLS client certificate it came with (``None`` without mutual TLS)."""

    headers: dict[str, str]
    raw: bytes
    body: Any
    client_certificate: str | None = None

    @property
    def alertnames(self) -> list[str]:
        return [alert["labels"]["alertname"] for alert in self.body.get("alerts", [])]


class WebhookReceiver(BackgroundApp):
    """Answers ``POST {path}`` with 200 and keeps every notification, in arrival order.

    Served over HTTPS with ``ssl_context``; when that context requires client certificates
    (mutual TLS), each notification records the common name of the one presented.
    """

    def __init__(self, path: str = "/webhook", *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._received: list[Notification] = []
        app = web.Application()
        app.router.add_post(path, self._handle)
        super().__init__(app, ssl_context=ssl_context)

    @property
    def url(self) -> str:
        return f"{self.base_url}{self.path}"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        notification = Notification(headers=dict(request.headers), raw=raw, body=json.loads(raw),
                                    client_certificate=peer_common_name(request))
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
