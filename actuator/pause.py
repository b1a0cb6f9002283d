"""``POST /pause`` and ``POST /resume``: an operator's switch for every action, at run time.

The switch lives in the guard state, so every replica sharing a ``--state-url`` obeys it and it
survives restarts. While paused, every decision is recorded as suppressed ``paused`` and nothing
is sent; nothing is claimed either, so an alert still firing acts when Alertmanager sends it
again after the resume. Pausing and resuming are recorded in the audit log (source
``operator``). An optional reason comes as ``{"reason": "..."}`` or a ``reason`` parameter.
"""
from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from .audit import Context
from .auth import Access, requires
from .guard_state import PauseState
from .http_contract import json_error
from .outcomes import ActionReport
from .services import Services, principal_of, services
from .unavailable import Unavailable

MAX_REASON_LENGTH = 500
log = logging.getLogger(__name__)


async def _reason(request: web.Request) -> str | None:
    """The optional reason; ValueError names what is wrong with it."""
    reason = request.query.get("reason")
    if request.content_type == "application/json" and request.can_read_body:
        try:
            body = json.loads(await request.read() or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict) or set(body) - {"reason"}:
            raise ValueError('expected a JSON object {"reason": "..."}')
        reason = body.get("reason", reason)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        reason = form.get("reason", reason)
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH):
        raise ValueError(f"reason: expected a string of at most {MAX_REASON_LENGTH} characters")
    return reason or None


async def switch(parts: Services, principal: str | None, paused: bool, reason: str | None) -> PauseState:
    """Flip the switch for ``principal``, audit it and log it; Unavailable if the state is unreachable."""
    state = PauseState(paused, principal, time.time(), reason)
    await parts.guards.state.set_pause(state)
    parts.metrics.paused.set(1 if paused else 0)
    word = "paused" if paused else "resumed"
    await parts.audit.record_decision(Context("operator", principal), ActionReport(
        command="pause" if paused else "resume", outcome=word, reason=reason))
    log.warning("actions %s by %s%s", word, principal, f": {reason}" if reason else "")
    return state


async def _switch(request: web.Request, paused: bool) -> web.Response:
    try:
        reason = await _reason(request)
    except ValueError as exc:
        return json_error(400, str(exc))
    try:
        state = await switch(services(request), principal_of(request), paused, reason)
    except Unavailable as exc:
        return json_error(503, str(exc))
    return web.json_response(state.describe())


@requires(Access.WRITE)
async def pause(request: web.Request) -> web.Response:
    return await _switch(request, True)


@requires(Access.WRITE)
async def resume(request: web.Request) -> web.Response:
    return await _switch(request, False)


@requires(Access.READ)
async def pause_state(request: web.Request) -> web.Response:
    try:
        state = await services(request).guards.state.pause_state()
    except Unavailable as exc:
        return json_error(503, str(exc))
    return web.json_response(state.describe())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/pause", pause)
    app.router.add_post("/resume", resume)
    app.router.add_get("/pause", pause_state)
