"""How people get a console session: a password form, or a login at their identity provider.

- ``GET /login``: the login page (a button per provider, the password form when users have
  passwords); ``POST /login``: the password form (CSRF-protected, throttled);
- ``GET /login/<provider>``: start a login at ``oidc`` or ``github``: a fresh ``state`` bound to
  this browser's session, the flow's nonce and PKCE verifier kept there too;
- ``GET /login/<provider>/callback``: the provider's answer; the state must be this session's
  (compared in constant time, used once, at most ``LOGIN_TIMEOUT`` old), then the flow proves the
  identity, the email policy admits one of its verified addresses, ``--roles`` gives the roles;
- ``POST /logout``.

Every outcome is logged on ``actuator.access`` (who, allowed or denied, why), failures count
against the login throttle, and nothing secret (password, code, token, state) is ever logged.
"""
from __future__ import annotations

import hmac
import logging
import math
import secrets
import time
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from . import sessions
from .auth import Access, Principal, requires
from .email_policy import EmailPolicy, normalise
from .identity import Identity, LoginError
from .login_throttle import throttle_keys
from .provider_client import ProviderError
from .services import Services, services

log = logging.getLogger("actuator.access")
LOGIN_TIMEOUT = 600.0


def safe_next(value: str | None) -> str:
    """A local path to return to after the login; anything else (another site) becomes ``/``."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    return value


def base_url(request: web.Request) -> str:
    public = services(request).settings.auth.public_url
    return public.rstrip("/") if public else f"{request.scheme}://{request.host}"


async def _page(request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
    parts = services(request)
    if not parts.settings.auth.people_log_in:
        raise web.HTTPNotFound(text="no login is configured (see --users-file, --oidc-*, --github-*)")
    auth = parts.settings.auth
    context = {"flows": list(parts.login_flows.values()), "passwords": bool(auth.basic_users or auth.password_users),
               "next": safe_next(request.query.get("next")), "error": error,
               "csrf_token": await sessions.csrf_token(request)}
    return aiohttp_jinja2.render_template("login.html", request, context, status=status)


@requires(Access.OPEN)
async def login_page(request: web.Request) -> web.Response:
    return await _page(request)


def _refuse(request: web.Request, who: str, why: str, keys: list[str]) -> None:
    services(request).throttle.failed(keys)
    log.warning("deny login %s %s from %s: %s", who, request.path, request.remote, why)


@requires(Access.OPEN)
async def password_login(request: web.Request) -> web.StreamResponse:
    parts = services(request)
    form = await request.post()
    user, password = str(form.get("username", "")), str(form.get("password", ""))
    keys = throttle_keys(request.remote, user or None)
    if not await sessions.csrf_valid(request):
        _refuse(request, repr(user[:64]), "missing or wrong CSRF token", keys)
        return await _page(request, error="The form expired; please try again.", status=403)
    wait = parts.throttle.retry_after(keys)
    if wait is not None:
        log.warning("deny login %r from %s: throttled", user[:64], request.remote)
        response = await _page(request, error=f"Too many failed attempts; try again in {math.ceil(wait)} s.",
                               status=429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    principal = await parts.authenticator.password(user, password, webhook=False) if user and password else None
    if principal is None:
        _refuse(request, repr(user[:64]), "wrong user or password", keys)
        return await _page(request, error="Wrong user name or password.", status=401)
    return await _signed_in(request, principal, safe_next(str(form.get("next", "/"))))


async def _signed_in(request: web.Request, principal: Principal, next_path: str) -> web.StreamResponse:
    if not principal.roles:
        log.warning("deny login %s from %s: no role (see --roles and --default-role)", principal.describe(),
                    request.remote)
        return await _page(request, error=f"{principal.name} has no role here.", status=403)
    await sessions.sign_in(request, principal)
    log.info("allow login %s (%s) from %s", principal.describe(), principal.roles_text(), request.remote)
    raise web.HTTPSeeOther(next_path)


def _flow(parts: Services, request: web.Request) -> Any:
    flow = parts.login_flows.get(request.match_info["provider"])
    if flow is None:
        raise web.HTTPNotFound(text=f"no login provider {request.match_info['provider']!r} is configured")
    return flow


def _redirect_uri(request: web.Request, name: str) -> str:
    return f"{base_url(request)}/login/{name}/callback"


@requires(Access.OPEN)
async def start_login(request: web.Request) -> web.StreamResponse:
    parts = services(request)
    flow = _flow(parts, request)
    state = secrets.token_urlsafe(24)
    try:
        url, kept = await flow.begin(_redirect_uri(request, flow.name), state)
    except ProviderError as exc:
        log.error("login at %s cannot start: %s", flow.name, exc)
        return await _page(request, error=f"{flow.label} cannot be reached right now.", status=502)
    await sessions.keep_login(request, {"provider": flow.name, "state": state,
                                        "next": safe_next(request.query.get("next")), **kept})
    log.info("login at %s started from %s", flow.name, request.remote)
    raise web.HTTPFound(url)


@requires(Access.OPEN)
async def login_callback(request: web.Request) -> web.StreamResponse:
    parts = services(request)
    flow = _flow(parts, request)
    keys = throttle_keys(request.remote, None)
    wait = parts.throttle.retry_after(keys)
    if wait is not None:
        log.warning("deny login callback from %s: throttled", request.remote)
        return await _page(request, error=f"Too many failed attempts; try again in {math.ceil(wait)} s.", status=429)
    pending = await sessions.take_login(request)
    why = _unexpected(pending, flow.name, request.query.get("state", ""))
    if why is not None:
        _refuse(request, f"at {flow.name}", why, keys)
        return await _page(request, error="This login was not started here, or took too long; please sign in again.",
                           status=400)
    assert pending is not None
    try:
        identity = await flow.complete(request.query, pending, _redirect_uri(request, flow.name))
    except (LoginError, ProviderError) as exc:
        _refuse(request, f"at {flow.name}", str(exc), keys)
        return await _page(request, error=f"{flow.label} did not confirm who you are.", status=403)
    email, reasons = _admitted_email(identity, EmailPolicy(parts.settings.auth.allowed_emails))
    if email is None:
        _refuse(request, f"{identity.provider} subject {identity.subject!r}", "; ".join(reasons) or "no email", keys)
        return await _page(request, error="Your account's email address is not allowed here.", status=403)
    principal = Principal(email, identity.provider, parts.authenticator.roles_of_person(email, identity.groups))
    return await _signed_in(request, principal, pending["next"])


def _unexpected(pending: dict[str, Any] | None, provider: str, state: str) -> str | None:
    """Why a callback does not belong to the login this session started, or None."""
    if pending is None:
        return "no login in progress in this browser session"
    if pending.get("provider") != provider:
        return f"the login in progress is at {pending.get('provider')!r}"
    if not hmac.compare_digest(str(pending.get("state", "")), state):
        return "state does not match this session's login"
    if time.time() - float(pending.get("started", 0)) > LOGIN_TIMEOUT:
        return f"the login started more than {LOGIN_TIMEOUT:g} s ago"
    return None


def _admitted_email(identity: Identity, policy: EmailPolicy) -> tuple[str | None, list[str]]:
    """The first of the identity's addresses the policy admits (normalised), and why the others not."""
    reasons = []
    for address, verified in identity.emails:
        verdict = policy.judge(address, verified)
        if verdict.allowed:
            return normalise(address), reasons
        reasons.append(verdict.reason)
    return None, reasons


@requires(Access.OPEN)
async def logout(request: web.Request) -> web.StreamResponse:
    who = await sessions.principal(request)
    if not await sessions.csrf_valid(request):
        log.warning("deny logout from %s: missing or wrong CSRF token", request.remote)
        raise web.HTTPForbidden(text="missing or wrong CSRF token")
    await sessions.sign_out(request)
    log.info("logout %s from %s", who.describe() if who else "anonymous", request.remote)
    raise web.HTTPSeeOther("/login" if services(request).settings.auth.people_log_in else "/")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", password_login)
    app.router.add_get("/login/{provider}", start_login)
    app.router.add_get("/login/{provider}/callback", login_callback)
    app.router.add_post("/logout", logout)

