"""Flower's control API, so the requests in Flower's docs (and the scripts written for it) work
against the actuator: same paths, same query and form parameter names, same answers
(``{"message": ...}``) and status codes. Unlike Flower, every request goes through the
actuator's validation, capability checks, guards and audit log, and the commands that restart,
stop or kill (pool restart, shutdown, revoke) are refused with 403 unless ``--allow-api``
names them: a leaked read-write credential must not be enough to stop the cluster. The guards
of a manual action are pause, bounds (the rule file's ``limits``; never below one process), the
global budget and dry-run; a held action answers 403 with the guard's reason.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import commands
from .actions import Action
from .audit import Context
from .auth import Access, requires
from .commands import COMMANDS, ArgumentError
from .http_contract import api_status, json_error
from .outcomes import ActionReport
from .settings import GATED_API_COMMANDS
from .services import principal_of, services
from .targets import Target
from .unavailable import Unavailable


@dataclass(frozen=True)
class Endpoint:
    """One Flower control endpoint: its command, where the arguments come from, how it answers.

    ``{name}`` in the path is the worker, or for task endpoints the command argument
    ``path_argument`` (the task, or the task id); their worker then comes from the ``workername``
    parameter: every worker when it is absent. ``parameters`` maps Flower's parameter names to
    the command's argument names. ``message`` is Flower's success message; None means the
    worker's own reply, as Flower answers for those endpoints.
    """

    path: str
    command: str
    parameters: Mapping[str, str]
    failure: str
    message: str | None = None
    path_argument: str | None = None


ENDPOINTS = (
    Endpoint("/api/worker/pool/grow/{name}", "pool_grow", {"n": "n"}, "Failed to grow '{}' worker's pool",
             "Growing '{name}' worker's pool by {n}"),
    Endpoint("/api/worker/pool/shrink/{name}", "pool_shrink", {"n": "n"}, "Failed to shrink '{}' worker's pool",
             "Shrinking '{name}' worker's pool by {n}"),
    Endpoint("/api/worker/pool/autoscale/{name}", "autoscale", {"min": "min", "max": "max"},
             "Failed to autoscale '{}' worker", "Autoscaling '{name}' worker (min={min}, max={max})"),
    Endpoint("/api/worker/queue/add-consumer/{name}", "add_consumer", {"queue": "queue"},
             "Failed to add consumer to '{}' worker"),
    Endpoint("/api/worker/queue/cancel-consumer/{name}", "cancel_consumer", {"queue": "queue"},
             "Failed to cancel consumer from '{}' worker"),
    Endpoint("/api/task/timeout/{name}", "time_limit", {"soft": "soft", "hard": "hard"},
             "Failed to set timeouts on {}", path_argument="task"),
    Endpoint("/api/task/rate-limit/{name}", "rate_limit", {"ratelimit": "rate_limit"},
             "Failed to set rate limit on {}", path_argument="task"),
    Endpoint("/api/worker/pool/restart/{name}", "pool_restart", {}, "Failed to restart the '{}' pool",
             "Restarting '{name}' worker's pool"),
    Endpoint("/api/worker/shutdown/{name}", "shutdown", {}, "Failed to shut down '{}' worker", "Shutting down!"),
    Endpoint("/api/task/revoke/{name}", "revoke", {"terminate": "terminate", "signal": "signal"},
             "Failed to revoke '{}'", "Revoked '{name}'", path_argument="task_id"),
)


async def _params(request: web.Request) -> dict[str, str]:
    """Query and form parameters together, as Tornado's ``get_argument`` sees them.

    ValueError when the form body cannot be read (a multipart body without its boundary, bytes
    that are not UTF-8).
    """
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
        context = Context("api", principal_of(request))
        try:
            params = await _params(request)
        except ValueError as exc:
            problem = f"cannot read the {request.content_type} body: {exc}"
            return await _unsent(request, context, ActionReport(command=spec.name, outcome="invalid", reason=problem),
                                 400, problem)
        worker = params.get("workername") or None if endpoint.path_argument else name
        raw = {argument: params.get(parameter) for parameter, argument in endpoint.parameters.items()}
        if endpoint.path_argument:
            raw[endpoint.path_argument] = name
        if spec.name in GATED_API_COMMANDS and spec.name not in parts.settings.allow_api:
            reason = (f"{request.method} {request.path} is disabled: start the actuator with "
                      f"--allow-api {spec.name} to allow it")
            report = ActionReport(command=spec.name, outcome="refused", reason=reason,
                                  arguments={key: value for key, value in raw.items() if value is not None},
                                  target="all" if worker is None else {"name": worker})
            return await _unsent(request, context, report, 403, f"{endpoint.failure.format(name)}: {reason}")
        try:
            arguments = spec.validate(raw)
            target = Target("all") if worker is None else Target("name", commands.named("workername", worker))
        except ArgumentError as exc:
            report = ActionReport(command=spec.name, outcome="invalid", reason=str(exc))
            return await _unsent(request, context, report, 400, str(exc), field=exc.field)
        action = Action(spec=spec, arguments=arguments, target=target)
        try:
            report = await parts.pipeline.execute(action, context, parts.settings.allow_api)
        except Unavailable as exc:
            return json_error(503, str(exc))
        status = api_status(report)
        if status == 200:
            return web.json_response({"message": _message(endpoint, name, arguments, report),
                                      **_details(report)})
        if status == 404:
            return json_error(404, f"Unknown worker '{worker}'" if worker else "No worker answered",
                              reason=report.reason)
        failure = endpoint.failure.format(name)
        return json_error(status, f"{failure}: {report.reason}", **_details(report))

    return handle


def _message(endpoint: Endpoint, name: str, arguments: Mapping[str, Any], report: ActionReport) -> str:
    if report.outcome != "sent":
        return report.reason or report.outcome
    if endpoint.message is not None:
        # What the worker was sent: bounds may have clipped what was asked.
        sent = next((w.arguments for w in report.workers if w.arguments is not None), {})
        return endpoint.message.format(name=name, **{**arguments, **sent})
    return next((w.detail for w in report.workers if w.outcome == "ok" and w.detail), "done")


def _details(report: ActionReport) -> dict[str, Any]:
    return {"outcome": report.outcome, "workers": [w.describe() for w in report.workers]}


async def _unsent(request: web.Request, context: Context, report: ActionReport, status: int, message: str,
                  **fields: Any) -> web.Response:
    """Record a request that was answered without sending anything, then answer it."""
    await services(request).pipeline.record(context, report)
    return json_error(status, message, **fields)


def add_routes(app: web.Application) -> None:
    for endpoint in ENDPOINTS:
        app.router.add_post(endpoint.path, _handler(endpoint))
