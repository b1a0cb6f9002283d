"""Every request's access decision, in one place, logged.

In order:

1. a request that changes something (not GET/HEAD/OPTIONS) coming from another site (its
   ``Origin`` is not ours, or ``Sec-Fetch-Site: cross-site``) is refused with 403 whatever its
   credentials: a browser attaches cookies and remembered basic credentials to a cross-site form
   post, scripts and Alertmanager send no ``Origin``;
2. the route's :class:`~actuator.auth.Access` says whether credentials are needed;
3. the ``Authorization`` header, if present, is checked (throttled per client address and user
   name: 429 with ``Retry-After`` once too many attempts failed); without it, the session
   cookie of a person who logged in; without either, 401 (a browser asking for a page is sent
   to the login page instead);
4. the principal's roles must grant the access (403 otherwise);
5. a change authenticated by the session cookie, and any post of the console's forms whatever
   its credentials (``--no-auth`` included), must bring the session's CSRF token (403).

Every decision is logged on ``actuator.access``, denials as warnings: who, what, from where,
allowed or denied and why, and never a password, token, code or cookie.
"""
from __future__ import annotations

import logging
import math
import urllib.parse
from collections.abc import Awaitable, Callable

from aiohttp import web

from . import sessions
from .auth import ANONYMOUS, REQUIRED_ROLE, Principal, Refusal, access_of, basic_user, is_form
from .login_throttle import throttle_keys
from .services import PRINCIPAL, services

log = logging.getLogger("actuator.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _what(request: web.Request) -> str:
    return f"{request.method} {request.path} from {request.remote}"


def deny(request: web.Request, who: str, status: int, why: str, headers: dict[str, str] | None = None,
         ) -> web.Response:
    log.warning("deny %s %s: %s", who, _what(request), why)
    return web.json_response({"error": why}, status=status, headers=headers)


def cross_site(request: web.Request, public_url: str | None) -> str | None:
    """Why this request comes from another site, or None if it does not (or cannot tell)."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return "cross-site request refused (Sec-Fetch-Site: cross-site)"
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    ours = urllib.parse.urlsplit(public_url).netloc if public_url else request.host
    if origin == "null" or urllib.parse.urlsplit(origin).netloc != ours:
        return f"cross-site request refused (Origin {origin[:100]!r} is not {ours!r})"
    return None


def _wants_page(request: web.Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


@web.middleware
async def gatekeeper(request: web.Request, handler: Handler) -> web.StreamResponse:
    parts = services(request)
    settings = parts.settings.auth
    unsafe = request.method not in SAFE_METHODS
    if unsafe and (why := cross_site(request, settings.public_url)) is not None:
        return deny(request, "anyone", 403, why)
    access = access_of(request.match_info.handler)
    needs_csrf = unsafe and is_form(request.match_info.handler)
    if not parts.authenticator.needs_credentials(access):
        if needs_csrf and not await sessions.csrf_valid(request):
            return deny(request, "anonymous", 403, "missing or wrong CSRF token")
        request[PRINCIPAL] = ANONYMOUS
        return await handler(request)
    header = request.headers.get("Authorization")
    if header is not None:
        found = await _by_header(request, header)
        if isinstance(found, web.Response):
            return found
        principal, by_cookie = found, False
    else:
        principal, by_cookie = await sessions.principal(request), True
        if principal is None:
            if _wants_page(request) and settings.people_log_in:
                log.info("redirect anonymous %s to the login page", _what(request))
                raise web.HTTPSeeOther(f"/login?{urllib.parse.urlencode({'next': request.path_qs})}")
            return deny(request, "anonymous", 401, "authentication required", parts.authenticator.challenge())
    if not principal.may(access):
        return deny(request, f"{principal.describe()} ({principal.roles_text()})", 403,
                    f"{principal.describe()} has role {principal.roles_text()}; {access.value} access needs "
                    f"{REQUIRED_ROLE[access].value}")
    if (needs_csrf or (unsafe and by_cookie)) and not await sessions.csrf_valid(request):
        return deny(request, principal.describe(), 403, "missing or wrong CSRF token")
    log.info("allow %s (%s) %s", principal.describe(), principal.roles_text(), _what(request))
    request[PRINCIPAL] = principal
    return await handler(request)


async def _by_header(request: web.Request, header: str) -> Principal | web.Response:
    parts = services(request)
    user = basic_user(header)
    keys = throttle_keys(request.remote, user)
    who = f"user {user[:64]!r}" if user is not None else "caller"
    wait = parts.throttle.retry_after(keys)
    if wait is not None:
        return deny(request, who, 429, "too many failed attempts; try again later",
                    {"Retry-After": str(math.ceil(wait))})
    found = await parts.authenticator.authenticate(header)
    if isinstance(found, Refusal):
        if found.unavailable:
            return deny(request, who, 503, found.reason)
        parts.throttle.failed(keys)
        return deny(request, who, 401, f"bad credentials: {found.reason}", parts.authenticator.challenge())
    return found
