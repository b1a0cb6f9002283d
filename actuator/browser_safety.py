"""What every response tells browsers, so a page of the actuator can do no harm even if
something slipped through the templates' escaping.

- ``Content-Security-Policy``: scripts, styles and connections from the actuator itself only (no
  inline script runs), forms post only here, and no site may frame the console;
- ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``;
- ``X-Content-Type-Options: nosniff``: JSON stays JSON;
- ``Referrer-Policy: same-origin``: a URL (a login callback's code, a worker name) never leaks
  to another site in a ``Referer`` (``no-referrer`` would also make browsers send
  ``Origin: null`` on the console's own forms, which the cross-site check refuses).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@web.middleware
async def safety_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(HEADERS)
        raise
    if not response.prepared:
        response.headers.update(HEADERS)
    return response
