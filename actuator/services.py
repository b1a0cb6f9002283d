"""The running actuator's parts, shared by the request handlers through the aiohttp app."""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .audit import AuditLog
from .auth import Authenticator, Principal
from .control import RemoteControl
from .guards import Guards
from .identity import LoginFlow
from .login_throttle import LoginThrottle
from .metrics import ActuatorMetrics
from .pipeline import Pipeline
from .rules import RuleSet
from .settings import Settings
from .targets import TargetResolver


@dataclass
class Services:
    settings: Settings
    rules: RuleSet
    control: RemoteControl
    resolver: TargetResolver
    pipeline: Pipeline
    guards: Guards
    audit: AuditLog
    metrics: ActuatorMetrics
    authenticator: Authenticator
    throttle: LoginThrottle
    # The providers people may log in with, by name (``oidc``, ``github``).
    login_flows: dict[str, LoginFlow]


SERVICES = web.AppKey("services", Services)
PRINCIPAL = web.RequestKey("principal", Principal)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def principal_of(request: web.Request) -> str | None:
    principal = request.get(PRINCIPAL)
    return principal.describe() if principal is not None else None
