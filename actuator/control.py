"""Celery remote control (pidbox) from an asyncio service.

Kombu is blocking, so every broadcast runs in a small thread pool. Every call asks for replies
with a ``limit`` equal to the number of workers expected: kombu then stops collecting as soon as
they all answered (a couple of milliseconds) instead of always waiting the whole timeout.

A broker that cannot be reached raises :class:`BrokerUnavailable` after a short, bounded retry,
so the webhook can answer 503 and let Alertmanager retry, instead of hanging on kombu's default
reconnect loop.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from celery import Celery
from kombu import Connection
from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url

from .settings import ControlSettings
from .unavailable import Unavailable

T = TypeVar("T")
# Blocking broker calls in flight at once; each thread has its own reply queue (kombu keys the
# reply queue by thread), so concurrent webhooks never read each other's replies. An inspection of
# a worker that is gone holds its thread for the whole --inspect-timeout, so more threads keep a
# few of those from queueing every other action behind them; but a broadcast holds two of the
# app's pooled broker connections at once (its own, and the producer pool's to publish), so half
# the pool (Celery's broker_pool_limit, 10 by default) is the most: one more and every thread
# could hold one connection while waiting for a second.
DEFAULT_POOL_LIMIT = 10


# Commands a worker never answers, with what is recorded instead of a reply: Celery's shutdown
# raises SystemExit inside the control handler, so its reply is never sent and waiting for one
# would only turn a shutdown that worked into a timeout.
SILENT_COMMANDS = {"shutdown": "sent (a worker does not reply to shutdown)"}


class BrokerUnavailable(Unavailable):
    """The broker could not be reached (a retry later may succeed)."""

    outcome = "broker_unavailable"


@dataclass(frozen=True)
class Reply:
    """A worker's answer to a control command: ``{"ok": ...}`` or ``{"error": ...}``."""

    ok: bool
    text: str

    @classmethod
    def parse(cls, body: Any) -> Reply:
        if isinstance(body, dict) and "ok" in body:
            return cls(True, str(body["ok"]))
        if isinstance(body, dict) and "error" in body:
            return cls(False, str(body["error"]))
        return cls(True, str(body))


class RemoteControl:
    """Sends control commands and inspections; one instance per service."""

    def __init__(self, settings: ControlSettings, app: Celery | None = None) -> None:
        """Use ``app`` (``celery -A proj actuator``) or a bare app; ``settings.broker_url`` wins.

        Celery publishes control commands through the app's own producer pool, so the broker URL
        and the bounded retry must be the app's configuration, not just a connection's.
        """
        self.settings = settings
        self.app = app if app is not None else Celery("autopilot-actuator", set_as_current=False)
        conf = self.app.conf
        overrides: dict[str, Any] = {
            "broker_connection_timeout": settings.broker_connect_timeout,
            # One retry, then fail fast: kombu's default reconnect loop takes seconds.
            "broker_transport_options": {
                **(conf.broker_transport_options or {}),
                "max_retries": 1, "interval_start": 0.2, "interval_step": 0.2, "interval_max": 0.2,
                "socket_connect_timeout": settings.broker_connect_timeout,
            },
        }
        if settings.broker_url:
            overrides.update(broker_url=settings.broker_url, broker_read_url=None, broker_write_url=None)
        conf.update(overrides)
        threads = max(1, (conf.broker_pool_limit or DEFAULT_POOL_LIMIT) // 2)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="control")
        probe = self.app.connection_for_write()
        self._connection_errors = (OperationalError, *probe.connection_errors)
        self.broker = maybe_sanitize_url(probe.as_uri(include_password=True))
        probe.release()

    async def send(self, command: str, arguments: Mapping[str, Any],
                   workers: Iterable[str]) -> dict[str, Reply | None]:
        """Send a command to the named workers; None for each worker that did not reply in time."""
        destination = sorted(set(workers))
        if command in SILENT_COMMANDS:
            await self._broadcast(command, dict(arguments), destination, 0, None, reply=False)
            return {worker: Reply(True, SILENT_COMMANDS[command]) for worker in destination}
        replies = await self._broadcast(command, dict(arguments), destination,
                                        self.settings.reply_timeout, len(destination))
        return {worker: Reply.parse(replies[worker]) if worker in replies else None
                for worker in destination}

    async def inspect(self, method: str, workers: Iterable[str] | None = None,
                      limit: int | None = None) -> dict[str, Any]:
        """Run an inspect command; ``workers=None`` asks everyone (then ``limit`` says how many
        replies to wait for, or None to wait the whole timeout)."""
        destination = sorted(set(workers)) if workers is not None else None
        if destination is not None:
            limit = len(destination)
        return await self._broadcast(method, {}, destination, self.settings.inspect_timeout, limit)

    async def run(self, work: Callable[[Connection], T]) -> T:
        """Run blocking broker work on the control threads, with a connection from the app's pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run_blocking, work)

    def _run_blocking(self, work: Callable[[Connection], T]) -> T:
        try:
            with self.app.connection_or_acquire() as connection:
                return work(connection)
        except self._connection_errors as exc:
            raise BrokerUnavailable(f"broker {self.broker} unreachable: {exc}") from None

    async def _broadcast(self, command: str, arguments: dict[str, Any], destination: list[str] | None,
                         timeout: float, limit: int | None, reply: bool = True) -> dict[str, Any]:
        if destination == []:
            return {}

        def broadcast(connection: Connection) -> Any:
            return self.app.control.broadcast(
                command, arguments=arguments, destination=destination, reply=reply,
                timeout=timeout, limit=limit, connection=connection)
        replies = await self.run(broadcast)
        merged: dict[str, Any] = {}
        for reply in replies or []:
            if isinstance(reply, dict):
                merged.update(reply)
        return merged

    def close(self) -> None:
        """Stop the control threads. The broker connections they used stay in kombu's pool for
        this broker, which belongs to the process (any other app on the same broker shares it):
        force-closing it would break them; the process's exit closes it."""
        self._executor.shutdown(wait=False, cancel_futures=True)
