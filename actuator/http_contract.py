"""The actuator's HTTP contract, in one place.

Alertmanager retries a webhook only when the answer is 5xx, so:

- 200 when the notification was handled, whatever was decided (including "no rule matched",
  refusals, dry runs and worker errors: sending it again would not change the outcome);
- 400 for a body that is not an Alertmanager payload (never retried; the error names the field);
- 401 without valid credentials, 413 past the size bound;
- 503 only when the broker (or the guard state in Redis) cannot be reached: then a retry can
  help, and idempotency makes it safe.

The Flower-style API answers like Flower: 200 with ``{"message": ...}``, 400 for bad arguments,
404 for an unknown worker, 403 with the worker's (or the actuator's) reason when the command is
refused (a guard's suppression included), 502 when the worker did not answer, 503 when the broker
or the guard state cannot be reached.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from .outcomes import ActionReport, NotificationReport


def json_error(status: int, message: str, **fields: Any) -> web.Response:
    body = {"error": message, **{key: value for key, value in fields.items() if value is not None}}
    return web.json_response(body, status=status)


def webhook_status(report: NotificationReport) -> int:
    return 503 if report.unavailable else 200


def api_status(report: ActionReport) -> int:
    """The Flower-style status code for one action's outcome."""
    if report.outcome in ("sent", "dry_run"):
        return 200
    if report.outcome == "no_targets":
        return 404
    if report.outcome in ("broker_unavailable", "state_unavailable"):
        return 503
    if report.outcome in ("failed", "partial") and not any(w.outcome == "error" for w in report.workers):
        return 502
    return 403
