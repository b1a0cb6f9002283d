"""``POST /webhook``: Alertmanager's notifications in, a JSON summary of every decision out."""
from __future__ import annotations

import logging

from aiohttp import web

from .auth import Access, requires
from .http_contract import json_error, webhook_status
from .payload import PayloadError, parse_notification
from .services import Services, principal_of, services

# How much of a rejected body the audit log keeps: enough to see what was sent.
REJECTED_BODY_KEPT = 4096
log = logging.getLogger(__name__)


@requires(Access.WRITE)
async def webhook(request: web.Request) -> web.Response:
    parts = services(request)
    principal = principal_of(request)
    limit = parts.settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return await _rejected(parts, principal, "", 413, f"request body of {request.content_length} bytes "
                                                          f"exceeds the limit of {limit} bytes (--max-body-bytes)")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return await _rejected(parts, principal, "", 413,
                               f"request body exceeds the limit of {limit} bytes (--max-body-bytes)")
    text = body.decode("utf-8", errors="replace")
    try:
        notification = parse_notification(body)
    except PayloadError as exc:
        return await _rejected(parts, principal, text[:REJECTED_BODY_KEPT], 400, exc.message, exc.field)
    report = await parts.pipeline.handle(notification, principal, text)
    return web.json_response(report.describe(), status=webhook_status(report))


async def _rejected(parts: Services, principal: str | None, kept: str, status: int, message: str,
                    field: str | None = None) -> web.Response:
    """Answer a body that is not a notification (too large, or not Alertmanager's), after
    recording it: a sender that keeps getting 4xx shows in the audit log, the log and /metrics."""
    parts.metrics.notifications.labels("invalid").inc()
    parts.metrics.errors.labels("payload").inc()
    error = f"{field}: {message}" if field else message
    await parts.audit.record_notification(principal=principal, outcome="rejected", payload=kept, error=error)
    log.warning("webhook from %s answered %d: %s", principal, status, error)
    return json_error(status, message, field=field)
