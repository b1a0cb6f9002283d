"""Flower's read API, so scripts written against Flower read the actuator unchanged.

- ``GET /api/workers``: Flower's ``{worker: {"stats", "active_queues", "registered", "scheduled",
  "active", "reserved", "revoked", "conf", "timestamp"}}``, with Flower's ``refresh``,
  ``workername`` and ``status`` parameters (see :mod:`worker_inspector` for freshness);
- ``GET /api/queues/length``: Flower's ``{"active_queues": [{"name", "messages"}]}``;
- ``GET /api/queues``: the same list bare, the endpoint the Flower article's autoscaling script
  calls (Flower itself has none).

Queues listed are those any worker consumes plus ``--queues``, sorted by name. Names and every
other string are returned exactly as workers and the broker report them (JSON, never HTML).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

from aiohttp import web

from . import commands
from .auth import Access, requires
from .control import BrokerUnavailable
from .http_contract import json_error
from .queue_length import queue_lengths
from .services import SERVICES, services
from .worker_facts import queue_names
from .worker_inspector import WorkerInspector

WORKER_INSPECTOR = web.AppKey("worker_inspector", WorkerInspector)
# Flower reads booleans with distutils' strtobool.
_TRUE = frozenset({"y", "yes", "t", "true", "on", "1"})
_FALSE = frozenset({"n", "no", "f", "false", "off", "0"})


def flag(query: Mapping[str, str], name: str) -> bool:
    """A boolean query parameter as Flower reads it (absent or empty: false)."""
    value = query.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE or not value:
        return False
    raise ValueError(f"{name}: got {query[name]!r}; expected one of {', '.join(sorted(_TRUE | _FALSE))}")


def _plain(value: Any) -> Any:
    """JSON for what kombu's decoder turns into Python objects (datetimes, UUIDs, decimals, bytes)."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _json(body: Any) -> web.Response:
    return web.json_response(body, dumps=lambda data: json.dumps(data, default=_plain))


@requires(Access.READ)
async def workers(request: web.Request) -> web.Response:
    query = request.query
    try:
        refresh, status = flag(query, "refresh"), flag(query, "status")
        name = commands.named("workername", query["workername"]) if query.get("workername") else None
    except ValueError as exc:
        return json_error(400, str(exc))
    inspector = request.app[WORKER_INSPECTOR]
    try:
        if status:
            return _json(await inspector.status(refresh))
        found = await inspector.workers(name, refresh)
    except BrokerUnavailable as exc:
        return json_error(503, str(exc))
    if name is not None and name not in found:
        return json_error(404, f"Unknown worker '{name}'")
    return _json(found)


async def _queues(request: web.Request) -> list[dict[str, Any]]:
    parts = services(request)
    consumed = await parts.resolver.everyone("active_queues")
    names = {name for reply in consumed.values() for name in queue_names(reply)} | set(parts.settings.queues)
    lengths = await parts.control.run(lambda connection: queue_lengths(connection, names))
    return [{"name": name, "messages": count} for name, count in lengths.items()]


@requires(Access.READ)
async def queues(request: web.Request) -> web.Response:
    try:
        return web.json_response(await _queues(request))
    except BrokerUnavailable as exc:
        return json_error(503, str(exc))


@requires(Access.READ)
async def queues_length(request: web.Request) -> web.Response:
    try:
        return web.json_response({"active_queues": await _queues(request)})
    except BrokerUnavailable as exc:
        return json_error(503, str(exc))


def add_routes(app: web.Application) -> None:
    parts = app[SERVICES]
    app[WORKER_INSPECTOR] = WorkerInspector(parts.resolver, parts.settings.workers_max_age)
    app.router.add_get("/api/workers", workers)
    app.router.add_get("/api/queues", queues)
    app.router.add_get("/api/queues/length", queues_length)
