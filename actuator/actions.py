"""From a rule's action template and an alert to a concrete, validated action.

This is the render → validate step of the pipeline: templates are rendered with the alert in
the sandbox, and every rendered value goes through the command's spec. Nothing here talks to the
broker; an action that comes out of :func:`render_action` is safe to send as far as its
arguments go.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import commands
from .commands import ArgumentError, CommandSpec
from .payload import Alert
from .rules import BOTH, ActionTemplate, Bounds, GuardPolicy, Rule
from .targets import Target
from .templating import RenderError, alert_context, render_value


class ActionError(ValueError):
    """An action could not be rendered or validated for this alert."""

    def __init__(self, field: str, message: str, rendered: Mapping[str, Any]) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.rendered = dict(rendered)


@dataclass(frozen=True)
class Action:
    """A command with validated arguments and a target, not yet resolved to workers.

    ``rule`` and ``index`` (the rule's action number, from 1) are None for a manual action (the
    Flower-style API).
    """

    spec: CommandSpec
    arguments: Mapping[str, Any]
    target: Target
    rule: str | None = None
    policy: GuardPolicy = field(default_factory=GuardPolicy)
    bounds: Bounds = field(default_factory=Bounds)
    index: int | None = None
    direction: str = BOTH

    @property
    def celery_arguments(self) -> dict[str, Any]:
        return self.spec.celery_arguments(self.arguments)

    def describe(self) -> dict[str, Any]:
        return {"rule": self.rule, "command": self.spec.name, "arguments": dict(self.arguments),
                "target": self.target.describe()}


def render_action(template: ActionTemplate, rule: Rule, alert: Alert) -> Action:
    """Render and validate; raise :class:`ActionError` naming the field that failed."""
    context = alert_context(alert)
    rendered: dict[str, Any] = {}
    field_name = "workers"
    try:
        target = Target("all")
        if template.target.kind != "all":
            field_name = f"workers.{template.target.kind}"
            value = rendered[field_name] = render_value(template.target.value, context)
            target = Target(template.target.kind, commands.named(field_name, value))
        arguments: dict[str, Any] = {}
        for field_name, template_value in template.arguments.items():
            arguments[field_name] = rendered[field_name] = render_value(template_value, context)
        validated = template.spec.validate(arguments)
    except RenderError as exc:
        raise ActionError(field_name, str(exc), rendered) from None
    except ArgumentError as exc:
        raise ActionError(exc.field, exc.detail, rendered) from None
    return Action(spec=template.spec, arguments=validated, target=target, rule=rule.name,
                  policy=rule.policy, bounds=template.bounds, index=template.index, direction=template.direction)

