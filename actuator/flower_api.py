"""Flower's control API, so the requests in Flower's docs (and the scripts written for it) work
against the actuator: same paths, same query and form parameter names, same answers
(``{"message": ...}``) and status codes. Unlike Flower, every request goes through the
actuator's validation, capability checks, guards and audit log.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from aiohttp import web

from . import commands
from .actions import Action
from .audit import Context
from .auth import Access, requires
from .commands import COMMANDS, ArgumentError
from .control import BrokerUnavailable
from .http_contract import api_status, json_error
from .outcomes import ActionReport
from .queue_length import queue_lengths
from .services import principal_of, services
from .targets import Target

Params = Mapping[str, str]


@dataclass(frozen=True)
class Endpoint:
    """One Flower control endpoint: which command, where its arguments come from, how to answer."""

    path: str
    command: str
    arguments: Callable[[Params, str], dict[str, Any]]
    # Path parameter → the worker it names (worker endpoints) or None (task endpoints, whose
    # worker comes from the ``workername`` parameter, all workers when absent).
    worker_in_path: bool
    success: Callable[[str, Mapping[str, Any], ActionReport], str]
    failure: str


def _worker_reply(_: str, __: Mapping[str, Any], report: ActionReport) -> str:
    return next((w.detail for w in report.workers if w.outcome == "ok" and w.detail), "done")


ENDPOINTS = (
    Endpoint("/api/worker/pool/grow/{name}", "pool_grow", lambda p, _: {"n": p.get("n", 1)}, True,
             lambda w, a, _: f"Growing '{w}' worker's pool by {a['n']}", "Failed to grow '{}' worker's pool"),
    Endpoint("/api/worker/pool/shrink/{name}", "pool_shrink", lambda p, _: {"n": p.get("n", 1)}, True,
             lambda w, a, _: f"Shrinking '{w}' worker's pool by {a['n']}",
             "Failed to shrink '{}' worker's pool"),
    Endpoint("/api/worker/pool/autoscale/{name}", "autoscale",
             lambda p, _: {"min": p.get("min"), "max": p.get("max")}, True,
             lambda w, a, _: f"Autoscaling '{w}' worker (min={a['min']}, max={a['max']})",
             "Failed to autoscale '{}' worker"),
    Endpoint("/api/worker/queue/add-consumer/{name}", "add_consumer",
             lambda p, _: {"queue": p.get("queue")}, True, _worker_reply,
             "Failed to add consumer to '{}' worker"),
    Endpoint("/api/worker/queue/cancel-consumer/{name}", "cancel_consumer",
             lambda p, _: {"queue": p.get("queue")}, True, _worker_reply,
             "Failed to cancel consumer from '{}' worker"),
    Endpoint("/api/task/timeout/{name}", "time_limit",
             lambda p, task: {"task": task, "soft": p.get("soft"), "hard": p.get("hard")}, False,
             _worker_reply, "Failed to set timeouts on {}"),
    Endpoint("/api/task/rate-limit/{name}", "rate_limit",
             lambda p, task: {"task": task, "rate_limit": p.get("ratelimit")}, False,
             _worker_reply, "Failed to set rate limit on {}"),
)


async def _params(request: web.Request) -> dict[str, str]:
    """Query and form parameters together, as Tornado's ``get_argument`` sees them."""
    params = dict(request.query)
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        params.update({key: value for key, value in (await request.post()).items()
                       if isinstance(value, str)})
    return params


def _handler(endpoint: Endpoint) -> Callable[[web.Request], Any]:
    spec = COMMANDS[endpoint.command]

    @requires(Access.WRITE)
    async def handle(request: web.Request) -> web.Response:
        parts = services(request)
        name = request.match_info["name"]
        params = await _params(request)
        worker = name if endpoint.worker_in_path else params.get("workername") or None
        context = Context("api", principal_of(request))
        try:
            arguments = spec.validate(endpoint.arguments(params, name))
            target = Target("all") if worker is None else Target("name", commands.name(worker))
        except ArgumentError as exc:
            return await _invalid(request, context, spec.name, exc.field, str(exc))
        except ValueError as exc:
            return await _invalid(request, context, spec.name, "workername",
                                  f"got {worker!r}; expected {exc}")
        action = Action(spec=spec, arguments=arguments, target=target)
        try:
            report = await parts.pipeline.execute(action, context)
        except BrokerUnavailable as exc:
            return json_error(503, str(exc))
        status = api_status(report)
        subject = worker if endpoint.worker_in_path else name
        if status == 200:
            message = (endpoint.success(subject, arguments, report) if report.outcome == "sent"
                       else report.reason or report.outcome)
            return web.json_response({"message": message, **_details(report)})
        if status == 404:
            return json_error(404, f"Unknown worker '{worker}'" if worker else "No worker answered",
                              reason=report.reason)
        failure = endpoint.failure.format(subject)
        return json_error(status, f"{failure}: {report.reason}", **_details(report))

    return handle


def _details(report: ActionReport) -> dict[str, Any]:
    return {"outcome": report.outcome, "workers": [w.describe() for w in report.workers]}


async def _invalid(request: web.Request, context: Context, command: str, field: str,
                   message: str) -> web.Response:
    report = ActionReport(command=command, outcome="invalid", reason=message)
    await services(request).pipeline.record(context, report)
    return json_error(400, message, field=field)


@requires(Access.READ)
async def queues_length(request: web.Request) -> web.Response:
    """Flower's shape: ``{"active_queues": [{"name": ..., "messages": ...}]}``, names exact."""
    parts = services(request)
    try:
        consumed = await parts.resolver.everyone("active_queues")
        names = {q["name"] for reply in consumed.values() if isinstance(reply, list)
                 for q in reply if isinstance(q, dict) and isinstance(q.get("name"), str)}
        lengths = await parts.control.run(lambda connection: queue_lengths(connection, names))
    except BrokerUnavailable as exc:
        return json_error(503, str(exc))
    return web.json_response({"active_queues": [{"name": name, "messages": count}
                                                for name, count in lengths.items()]})


def add_routes(app: web.Application) -> None:
    for endpoint in ENDPOINTS:
        app.router.add_post(endpoint.path, _handler(endpoint))
    app.router.add_get("/api/queues/length", queues_length)
