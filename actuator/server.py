"""The actuator's aiohttp application: parts wired together, routes, authentication, lifecycle."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from celery import Celery

from . import flower_api, pages, pause, read_api
from .audit import AuditLog
from .auth import ANONYMOUS, Authenticator, access_of
from .control import RemoteControl
from .guard_state import GuardState
from .guards import Guards
from .metrics import ActuatorMetrics
from .pipeline import Pipeline
from .rule_file import load_rules
from .rules import RuleSet
from .services import PRINCIPAL, SERVICES, Services
from .settings import Settings
from .state_redis import RedisGuardState
from .state_sqlite import SqliteGuardState
from .targets import TargetResolver, refresh_forever
from .unavailable import Unavailable
from .webhook import webhook

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def open_guard_state(settings: Settings, rules: RuleSet) -> GuardState:
    """Redis with ``--state-url``, else the embedded SQLite file."""
    if settings.guards.state_url:
        return RedisGuardState(settings.guards.state_url, settings.guards.state_key_prefix, rules.longest_cooldown)
    return SqliteGuardState(settings.state_db, rules.longest_cooldown)


def build_app(settings: Settings, rules: RuleSet, celery_app: Celery | None = None) -> web.Application:
    """Everything the service needs, built from settings and an already loaded rule file."""
    control = RemoteControl(settings.control, celery_app)
    resolver = TargetResolver(control)
    audit = AuditLog(settings.audit_db)
    guards = Guards(open_guard_state(settings, rules), settings.guards, rules.limits, settings.dry_run)
    metrics = ActuatorMetrics()
    metrics.prepare(rules, [endpoint.command for endpoint in flower_api.ENDPOINTS])
    metrics.rules_loaded.set(len(rules.rules))
    metrics.dry_run.set(1 if settings.dry_run else 0)
    parts = Services(
        settings=settings, rules=rules, control=control, resolver=resolver,
        pipeline=Pipeline(rules, resolver, control, guards, audit, metrics), guards=guards,
        audit=audit, metrics=metrics, authenticator=Authenticator(settings.auth),
    )
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[_count_requests, _authenticate])
    app[SERVICES] = parts
    app.router.add_post("/webhook", webhook)
    pages.add_routes(app)
    pause.add_routes(app)
    flower_api.add_routes(app)
    read_api.add_routes(app)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    parts = app[SERVICES]
    background = [asyncio.create_task(refresh_forever(parts.resolver, parts.settings.control.discovery_interval)),
                  asyncio.create_task(_prune_forever(parts))]
    yield
    for task in background:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    parts.control.close()
    parts.audit.close()
    await parts.guards.state.close()


async def _prune_forever(parts: Services) -> None:
    """Bounded retention: the audit log by age and rows, the guard state by expiry."""
    retention = parts.settings.retention
    while True:
        try:
            audit = await parts.audit.prune(retention.max_age, retention.max_rows)
            state = await parts.guards.state.prune()
            if audit or state:
                log.info("pruned %d audit records and %d expired guard entries", audit, state)
        except Unavailable as exc:
            log.warning("pruning the guard state failed: %s", exc)
        await asyncio.sleep(retention.prune_interval)


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 (with WWW-Authenticate) before the handler runs, so no request body is even read."""
    authenticator = request.app[SERVICES].authenticator
    access = access_of(request.match_info.handler)
    if not authenticator.needs_credentials(access):
        request[PRINCIPAL] = ANONYMOUS
        return await handler(request)
    principal = authenticator.authenticate(request.headers.get("Authorization"))
    if principal is None:
        log.warning("401 %s %s from %s: %s", request.method, request.path, request.remote,
                    "bad credentials" if "Authorization" in request.headers else "no credentials")
        return web.json_response({"error": "authentication required"}, status=401,
                                 headers=authenticator.challenge())
    request[PRINCIPAL] = principal
    return await handler(request)


@web.middleware
async def _count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        request.app[SERVICES].metrics.http_requests.labels(name, str(exc.status)).inc()
        raise
    except Exception:  # aiohttp answers 500: count it like any other answer
        request.app[SERVICES].metrics.http_requests.labels(name, "500").inc()
        raise
    request.app[SERVICES].metrics.http_requests.labels(name, str(response.status)).inc()
    return response


def serve(settings: Settings, celery_app: Celery | None = None) -> None:
    """Load the rules (refusing to start on any error), then serve until interrupted."""
    rules = load_rules(settings.rules_path)
    for warning in rules.warnings:
        log.warning("%s", warning)
    app = build_app(settings, rules, celery_app)
    log.info("actuator on http://%s:%d: %d rules from %s, broker %s, guard state %s%s", settings.host,
             settings.port, len(rules.rules), settings.rules_path, app[SERVICES].control.broker,
             app[SERVICES].guards.state.description, " (dry run)" if settings.dry_run else "")
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
