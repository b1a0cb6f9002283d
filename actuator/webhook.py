"""``POST /webhook``: Alertmanager's notifications in, a JSON summary of every decision out."""
from __future__ import annotations

from aiohttp import web

from .auth import Access, requires
from .http_contract import json_error, webhook_status
from .payload import PayloadError, parse_notification
from .services import principal_of, services

# How much of a rejected body the audit log keeps: enough to see what was sent.
REJECTED_BODY_KEPT = 4096


@requires(Access.WEBHOOK)
async def webhook(request: web.Request) -> web.Response:
    parts = services(request)
    limit = parts.settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return json_error(413, f"request body of {request.content_length} bytes exceeds the "
                               f"limit of {limit} bytes (--max-body-bytes)")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, f"request body exceeds the limit of {limit} bytes (--max-body-bytes)")
    text = body.decode("utf-8", errors="replace")
    principal = principal_of(request)
    try:
        notification = parse_notification(body)
    except PayloadError as exc:
        parts.metrics.notifications.labels("invalid").inc()
        parts.metrics.errors.labels("payload").inc()
        await parts.audit.record_notification(principal=principal, outcome="rejected",
                                              payload=text[:REJECTED_BODY_KEPT], error=str(exc))
        return json_error(400, exc.message, field=exc.field)
    report = await parts.pipeline.handle(notification, principal, text)
    return web.json_response(report.describe(), status=webhook_status(report))
