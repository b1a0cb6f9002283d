"""The read side: health, metrics, the loaded rules and the audit log (the console is :mod:`console`)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from .audit import FILTERS, MAX_LIMIT
from .auth import Access, requires
from .http_contract import json_error
from .metrics import CONTENT_TYPE
from .guard_state import PauseState
from .services import Services, services
from .unavailable import Unavailable

_INTEGER_FILTERS = ("notification",)
_MAX_ID = 2**63 - 1  # SQLite's largest integer


async def _pause_state(parts: Services) -> PauseState | None:
    """The pause switch as the guard state holds it now (None if unreachable); keeps the gauge
    current, since another replica may have flipped it."""
    try:
        state = await parts.guards.state.pause_state()
    except Unavailable:
        return None
    parts.metrics.paused.set(1 if state.paused else 0)
    return state


@requires(Access.OPEN)
async def healthz(request: web.Request) -> web.Response:
    parts = services(request)
    pause = await _pause_state(parts)
    return web.json_response({"status": "ok", "rules": len(parts.rules.rules),
                              "dry_run": parts.settings.dry_run, "paused": pause.paused if pause else None,
                              "broker": parts.control.broker, "state": parts.guards.state.description,
                              "workers_known": sorted(parts.resolver.directory.known)})


@requires(Access.METRICS)
async def metrics(request: web.Request) -> web.Response:
    parts = services(request)
    await _pause_state(parts)
    return web.Response(body=parts.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


@requires(Access.READ)
async def rules(request: web.Request) -> web.Response:
    return web.json_response(services(request).rules.describe())


def parse_filters(query: Any) -> tuple[dict[str, Any], int]:
    """``GET /actions`` query → (filters, limit); ValueError names the bad parameter."""
    filters: dict[str, Any] = {}
    limit = 100
    for key, value in query.items():
        if key == "limit":
            if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
                raise ValueError(f"limit: got {value!r}; expected an integer from 1 to {MAX_LIMIT}")
            limit = int(value)
        elif key == "since":
            filters[key] = _timestamp(value)
        elif key in _INTEGER_FILTERS:
            if not value.isdigit() or int(value) > _MAX_ID:
                raise ValueError(f"{key}: got {value!r}; expected an integer id")
            filters[key] = int(value)
        elif key in FILTERS:
            filters[key] = value
        else:
            raise ValueError(f"unknown parameter {key!r}; expected one of limit, {', '.join(FILTERS)}")
    return filters, limit


def _timestamp(value: str) -> float:
    for parse in (float, lambda text: datetime.fromisoformat(text).timestamp()):
        try:
            return parse(value)
        except ValueError:
            continue
    raise ValueError(f"since: got {value!r}; expected Unix seconds or an ISO 8601 time")


@requires(Access.READ)
async def actions(request: web.Request) -> web.Response:
    try:
        filters, limit = parse_filters(request.query)
    except ValueError as exc:
        return json_error(400, str(exc))
    records = await services(request).audit.decisions(filters, limit)
    return web.json_response({"actions": records})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/rules", rules)
    app.router.add_get("/actions", actions)
