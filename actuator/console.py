"""The operator console: server-rendered pages, live over server-sent events, forms to act.

- ``GET /``: the console (viewer): workers, queues, guards, pause and dry-run, the audit log;
  complete without JavaScript, and kept live by ``/static/console.js``;
- ``GET /console/events``: a server-sent event stream; each event carries one panel rendered
  anew (only when it changed), escaped by the same templates as the page;
- ``GET /console/state``: the same snapshot as JSON, every string exactly as given;
- ``POST /console/action``: an operator's command (grow, shrink, autoscale, add/cancel consumer,
  rate and time limits) for one worker or all, through the very pipeline webhooks take: validation,
  capability checks, the pause switch, the rule file's ``manual`` guards (bounds, cooldown, budgets),
  dry-run, remote control and the audit log, recorded with source ``console`` and the operator's name;
- ``POST /console/pause``, ``POST /console/resume``: the pause switch.

Forms carry the session's CSRF token (checked before any handler runs, see :mod:`gatekeeper`);
after acting the browser is sent back to ``/`` with the outcome (post, redirect, get), so a reload
never repeats a command.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
from importlib import resources
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from . import commands, sessions
from .actions import manual_action
from .audit import Context
from .auth import Access, form, requires
from .commands import COMMANDS, ArgumentError
from .console_state import ConsoleFeed
from .outcomes import ActionReport
from .pause import MAX_REASON_LENGTH, switch
from .roles import Role
from .read_api import WORKER_INSPECTOR
from .services import PRINCIPAL, SERVICES, Services, principal_of, services
from .targets import Target
from .unavailable import Unavailable

log = logging.getLogger(__name__)
CONSOLE_COMMANDS = ("pool_grow", "pool_shrink", "autoscale", "add_consumer", "cancel_consumer", "rate_limit",
                    "time_limit")
PANELS = ("banner", "workers", "queues", "guards", "actions")
STATIC_TYPES = {"console.js": "text/javascript", "console.css": "text/css"}
FEED = web.AppKey("console_feed", ConsoleFeed)
CLOSING = web.AppKey("console_closing", asyncio.Event)


async def _context(request: web.Request) -> dict[str, Any]:
    principal = request[PRINCIPAL]
    return {"state": await request.app[FEED].latest(), "principal": principal,
            "can_operate": Role.OPERATOR in principal.roles, "csrf_token": await sessions.csrf_token(request),
            "commands": CONSOLE_COMMANDS, "people_log_in": services(request).settings.auth.people_log_in}


@requires(Access.READ)
async def page(request: web.Request) -> web.Response:
    context = await _context(request)
    context["flash"] = await sessions.take_flash(request)
    return aiohttp_jinja2.render_template("console.html", request, context)


@requires(Access.READ)
async def state(request: web.Request) -> web.Response:
    return web.json_response(await request.app[FEED].latest())


def render_panels(request: web.Request, context: dict[str, Any]) -> dict[str, str]:
    env = aiohttp_jinja2.get_env(request.app)
    return {name: env.get_template(f"panels/{name}.html").render(context) for name in PANELS}


@requires(Access.READ)
async def events(request: web.Request) -> web.StreamResponse:
    """Each panel whenever it changes, every ``--console-interval`` seconds, until the browser
    goes away or the actuator stops."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    closing = request.app[CLOSING]
    interval = services(request).settings.console_interval
    sent: dict[str, str] = {}
    try:
        while not closing.is_set():
            for name, html in render_panels(request, await _context(request)).items():
                if sent.get(name) != html:
                    await response.write(f"event: panel\ndata: {json.dumps({'panel': name, 'html': html})}\n\n"
                                         .encode())
                    sent[name] = html
            try:
                await asyncio.wait_for(closing.wait(), timeout=interval)
            except TimeoutError:
                continue
    except ConnectionResetError:
        log.debug("console stream closed by %s", request.remote)
    return response


def _target(worker: str) -> Target:
    if worker in ("", "*"):
        return Target("all")
    return Target("name", commands.named("worker", worker))


async def _act(parts: Services, form: Any, principal: str | None) -> dict[str, Any]:
    """Run the form's command; the message to show the operator."""
    command = str(form.get("command", ""))
    if command not in CONSOLE_COMMANDS:
        return {"outcome": "invalid", "text": f"command: got {command[:40]!r}; expected one of "
                                              f"{', '.join(CONSOLE_COMMANDS)}"}
    spec = COMMANDS[command]
    raw = {name: str(form[name]).strip() for name in spec.argument_names if str(form.get(name, "")).strip()}
    context = Context("console", principal)
    try:
        arguments = spec.validate(raw)
        target = _target(str(form.get("worker", "")).strip())
    except ArgumentError as exc:
        await parts.pipeline.record(context, ActionReport(command=command, outcome="invalid", reason=str(exc),
                                                          arguments=raw))
        return {"outcome": "invalid", "text": f"{command}: {exc}"}
    action = manual_action(spec, arguments, target, parts.rules.manual)
    try:
        report = await parts.pipeline.execute(action, context)
    except Unavailable as exc:
        return {"outcome": exc.outcome, "text": f"{command}: {exc}"}
    return {"outcome": report.outcome, "text": _summary(report)}


def _summary(report: ActionReport) -> str:
    arguments = " ".join(f"{key}={value}" for key, value in report.arguments.items() if value is not None)
    target = report.target if isinstance(report.target, str) else next(iter(report.target.values()))
    workers = "; ".join(f"{w.worker}: {w.outcome}{f' ({w.detail})' if w.detail else ''}" for w in report.workers)
    reason = f" — {report.reason}" if report.reason and not report.workers else ""
    return f"{report.command} {arguments} on {target}: {report.outcome}{reason}{f' — {workers}' if workers else ''}"


@form
@requires(Access.WRITE)
async def act(request: web.Request) -> web.Response:
    parts = services(request)
    message = await _act(parts, await request.post(), principal_of(request))
    request.app[FEED].invalidate()
    await sessions.flash(request, message)
    raise web.HTTPSeeOther("/")


async def _switch(request: web.Request, *, paused: bool) -> web.Response:
    form = await request.post()
    reason = str(form.get("reason", "")).strip()[:MAX_REASON_LENGTH] or None
    try:
        await switch(services(request), principal_of(request), paused, reason)
        message = {"outcome": "paused" if paused else "resumed",
                   "text": "Actions paused: nothing is sent until resumed." if paused else "Actions resumed."}
    except Unavailable as exc:
        message = {"outcome": exc.outcome, "text": str(exc)}
    request.app[FEED].invalidate()
    await sessions.flash(request, message)
    raise web.HTTPSeeOther("/")


pause = form(requires(Access.WRITE)(functools.partial(_switch, paused=True)))
resume = form(requires(Access.WRITE)(functools.partial(_switch, paused=False)))


@requires(Access.OPEN)
async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_TYPES:
        raise web.HTTPNotFound()
    body = resources.files("actuator").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=STATIC_TYPES[name], headers={"Cache-Control": "no-cache"})


@requires(Access.OPEN)
async def favicon(request: web.Request) -> web.Response:
    """No icon; answered so that browsers' automatic requests are not logged as denials."""
    return web.Response(status=204)


async def _stop_streams(app: web.Application) -> None:
    app[CLOSING].set()


def add_routes(app: web.Application) -> None:
    """After :func:`read_api.add_routes`, whose worker inspector the console shares."""
    parts = app[SERVICES]
    app[CLOSING] = asyncio.Event()
    app[FEED] = ConsoleFeed(parts, app[WORKER_INSPECTOR], parts.settings.console_interval / 2)
    app.on_shutdown.append(_stop_streams)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/", page)
    app.router.add_get("/console/state", state)
    app.router.add_get("/console/events", events)
    app.router.add_post("/console/action", act)
    app.router.add_post("/console/pause", pause)
    app.router.add_post("/console/resume", resume)
