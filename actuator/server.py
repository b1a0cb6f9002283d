"""The actuator's aiohttp application: parts wired together, routes, authentication, lifecycle."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web
from celery import Celery
from jinja2 import PackageLoader

from . import console, flower_api, login, pages, pause, read_api, sessions
from .audit import AuditLog
from .auth import Authenticator
from .browser_safety import safety_headers
from .control import RemoteControl
from .discovery import Discovery
from .gatekeeper import gatekeeper
from .github_flow import GithubFlow
from .identity import LoginFlow
from .jwks import JwksCache
from .login_throttle import LoginThrottle
from .oidc_flow import OidcFlow
from .provider_client import ProviderClient
from .guard_state import GuardState
from .guards import Guards
from .metrics import ActuatorMetrics
from .pipeline import Pipeline
from .rule_file import load_rules
from .rules import RuleSet
from .services import SERVICES, Services
from .settings import AuthSettings, Settings, TlsSettings
from .state_redis import RedisGuardState
from .state_sqlite import SqliteGuardState
from .targets import TargetResolver, refresh_forever
from .tokens import TokenVerifier
from .unavailable import Unavailable
from .webhook import webhook

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def open_guard_state(settings: Settings, rules: RuleSet) -> GuardState:
    """Redis with ``--state-url``, else the embedded SQLite file."""
    if settings.guards.state_url:
        return RedisGuardState(settings.guards.state_url, settings.guards.state_key_prefix, rules.longest_cooldown)
    return SqliteGuardState(settings.state_db, rules.longest_cooldown)


PROVIDER_CLIENT = web.AppKey("provider_client", ProviderClient)


def _jwt_verifier(auth: AuthSettings, client: ProviderClient) -> TokenVerifier | None:
    """Machines' access tokens, checked against the issuer's published keys."""
    if auth.jwt is None:
        return None
    jwt = auth.jwt
    discovery = Discovery(jwt.issuer, client)
    jwks_url = jwt.jwks_url

    async def url() -> str:
        return jwks_url or await discovery.endpoint("jwks_uri")
    return TokenVerifier(jwt.issuer, jwt.audience, jwt.algorithms, JwksCache(client, url))


def _login_flows(auth: AuthSettings, client: ProviderClient) -> dict[str, LoginFlow]:
    flows: list[LoginFlow] = []
    if auth.oidc is not None:
        flows.append(OidcFlow(auth.oidc, client))
    if auth.github is not None:
        flows.append(GithubFlow(auth.github, client))
    return {flow.name: flow for flow in flows}


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
    client = ProviderClient(settings.auth.provider_ca_file)
    parts = Services(
        settings=settings, rules=rules, control=control, resolver=resolver,
        pipeline=Pipeline(rules, resolver, control, guards, audit, metrics), guards=guards,
        audit=audit, metrics=metrics, authenticator=Authenticator(settings.auth, _jwt_verifier(settings.auth, client)),
        throttle=LoginThrottle(settings.auth.throttle), login_flows=_login_flows(settings.auth, client),
    )
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[
        _count_requests, safety_headers, sessions.middleware(settings.auth.session, secure=settings.tls is not None),
        gatekeeper])
    app[SERVICES] = parts
    app[PROVIDER_CLIENT] = client
    aiohttp_jinja2.setup(app, loader=PackageLoader("actuator", "templates"), autoescape=True)
    app.router.add_post("/webhook", webhook)
    pages.add_routes(app)
    pause.add_routes(app)
    flower_api.add_routes(app)
    read_api.add_routes(app)
    console.add_routes(app)
    login.add_routes(app)
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
    parts.authenticator.close()
    await app[PROVIDER_CLIENT].close()
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
    context = server_ssl_context(settings.tls) if settings.tls is not None else None
    app = build_app(settings, rules, celery_app)
    log.info("actuator on %s://%s:%d: %d rules from %s, broker %s, guard state %s%s%s",
             "https" if context else "http", settings.host, settings.port, len(rules.rules), settings.rules_path,
             app[SERVICES].control.broker, app[SERVICES].guards.state.description,
             " (dry run)" if settings.dry_run else "",
             ", client certificates required" if settings.tls and settings.tls.client_ca else "")
    web.run_app(app, host=settings.host, port=settings.port, ssl_context=context, print=None, access_log=None,
                shutdown_timeout=5)


class TlsError(RuntimeError):
    """The certificate, key or client CA cannot be loaded (the service must not start)."""


def server_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """TLS 1.2 or later with ``--certfile``/``--keyfile``; with ``--client-ca`` every client must
    present a certificate that CA signed (mutual TLS), and only that CA: not the system's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.certfile, tls.keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"--certfile {tls.certfile} / --keyfile {tls.keyfile}: cannot load them: {exc}") from None
    if tls.client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca))
        except (ssl.SSLError, OSError) as exc:
            raise TlsError(f"--client-ca {tls.client_ca}: cannot load it: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context
