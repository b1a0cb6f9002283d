"""An aiohttp application served on loopback from a background thread.

Lets synchronous tests run small HTTP peers (a webhook receiver, a /metrics target) next to
real subprocesses, without making every test async.
"""
from __future__ import annotations

import asyncio
import ssl
import threading

from aiohttp import web


class BackgroundApp:
    """Serves ``app`` on 127.0.0.1 on a port the OS picks (no race for a "free" port).

    With ``ssl_context`` (tls.server_context) it serves HTTPS, and ``base_url`` says so.
    """

    def __init__(self, app: web.Application, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """``host:port``, as a Prometheus target or an Alertmanager URL needs it."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            runner = web.AppRunner(self.app, access_log=None)
            try:
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
                loop.run_until_complete(site.start())
                self.port = runner.addresses[0][1]
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="background-http", daemon=True)
        self._thread.start()
        started.wait(timeout=10)
        if failure:
            raise failure[0]
        if not self.port:
            raise RuntimeError("background HTTP server did not start within 10 s")

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> "BackgroundApp":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
