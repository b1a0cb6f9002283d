"""The console's session: who logged in, their CSRF token, a login in progress, a message to show.

The session lives in one cookie, encrypted and authenticated (Fernet, aiohttp-session's
``EncryptedCookieStorage``) with a key of 32 bytes: random per process unless
``--session-secret-file`` shares one between replicas and restarts. The cookie is HttpOnly (no
script reads it), SameSite=Lax (not sent on cross-site POSTs, yet sent when the identity provider
sends the browser back), Secure when the actuator serves HTTPS, and expires after
``--session-max-age`` (the encryption's timestamp enforces it even if a browser keeps the cookie).
A login replaces the whole session (a new cookie, a new CSRF token): a session fixed before the
login is worth nothing after it.

The CSRF token is a random value kept in the session: every form carries it, and every request
that changes something and is authenticated by the cookie must bring it back (form field
``csrf_token`` or header ``X-CSRF-Token``).
"""
from __future__ import annotations

import hmac
import secrets
import time
import warnings
from typing import Any

from aiohttp import web
from aiohttp.web_exceptions import NotAppKeyWarning
from aiohttp_session import get_session, new_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from .auth import Principal
from .roles import Role
from .settings import SessionSettings

# aiohttp-session keeps its storage under a plain string key of the request, which aiohttp warns
# about once per process; the key is the library's, nothing here can change it.
warnings.filterwarnings("ignore", category=NotAppKeyWarning, module="aiohttp_session")

COOKIE_NAME = "autopilot_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_PERSON, _CSRF, _LOGIN, _FLASH = "person", "csrf", "login", "flash"


def middleware(settings: SessionSettings, secure: bool) -> Any:
    storage = EncryptedCookieStorage(settings.secret or secrets.token_bytes(32), cookie_name=COOKIE_NAME,
                                     max_age=int(settings.max_age), httponly=True,
                                     secure=secure, samesite="Lax")
    return session_middleware(storage)


async def principal(request: web.Request) -> Principal | None:
    """The person this browser's session belongs to, if one logged in."""
    person = (await get_session(request)).get(_PERSON)
    if not isinstance(person, dict):
        return None
    return Principal(person["name"], person["method"], frozenset(Role(role) for role in person["roles"]))


async def sign_in(request: web.Request, who: Principal) -> None:
    """Start a new session for ``who`` (a new cookie and CSRF token)."""
    session = await new_session(request)
    session[_PERSON] = {"name": who.name, "method": who.method, "roles": sorted(r.value for r in who.roles)}
    session[_CSRF] = secrets.token_urlsafe(32)


async def sign_out(request: web.Request) -> None:
    (await get_session(request)).invalidate()


async def csrf_token(request: web.Request) -> str:
    """This session's CSRF token, made on first use."""
    session = await get_session(request)
    if not isinstance(session.get(_CSRF), str):
        session[_CSRF] = secrets.token_urlsafe(32)
    return session[_CSRF]


async def csrf_valid(request: web.Request) -> bool:
    """Whether the request brings back this session's CSRF token (header or form field)."""
    expected = (await get_session(request)).get(_CSRF)
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else None
    return isinstance(expected, str) and submitted is not None and hmac.compare_digest(expected, submitted)


async def keep_login(request: web.Request, pending: dict[str, Any]) -> None:
    session = await get_session(request)
    session[_LOGIN] = {**pending, "started": time.time()}


async def take_login(request: web.Request) -> dict[str, Any] | None:
    """The login in progress (used up: a callback can be delivered once)."""
    pending = (await get_session(request)).pop(_LOGIN, None)
    return pending if isinstance(pending, dict) else None


async def flash(request: web.Request, message: dict[str, Any]) -> None:
    (await get_session(request))[_FLASH] = message


async def take_flash(request: web.Request) -> dict[str, Any] | None:
    message = (await get_session(request)).pop(_FLASH, None)
    return message if isinstance(message, dict) else None
