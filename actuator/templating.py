"""Jinja templates of rule actions: compiled at load, rendered per alert in a sandbox.

Only strings from the rule file are ever compiled. Label and annotation values reach templates
as data in the context, so a label value that happens to contain ``{{ ... }}`` is output as is
and never evaluated. The environment is Jinja's immutable sandbox (no attribute tricks, no
mutating the context) with undefined names as errors, so a typo in a rule fails loudly instead
of rendering an empty string.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .payload import Alert

_ENVIRONMENT = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_MARKERS = ("{{", "{%", "{#")


class RenderError(ValueError):
    """A template failed for one alert (an undefined name, a failing filter, ...)."""


@dataclass(frozen=True)
class Compiled:
    """A template from the rule file, kept with its source for error messages and display."""

    source: str
    template: Template

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            return self.template.render(context)
        except Exception as exc:  # noqa: BLE001 - any failure of user template code is a RenderError
            raise RenderError(f"{type(exc).__name__}: {exc} (template {self.source!r})") from None


Value = Compiled | str | int | float | bool | None


def is_template(text: str) -> bool:
    return any(marker in text for marker in _MARKERS)


def compile_value(value: Any) -> Value:
    """Compile a string that contains template syntax; leave literals as they are.

    Raises ``TemplateSyntaxError`` so the rule loader can point at the line.
    """
    if isinstance(value, str) and is_template(value):
        return Compiled(value, _ENVIRONMENT.from_string(value))
    return value


def render_value(value: Value, context: Mapping[str, Any]) -> Any:
    return value.render(context) if isinstance(value, Compiled) else value


def describe(value: Value) -> Any:
    """The value as the rule file spelled it (a template's source, or the literal)."""
    return value.source if isinstance(value, Compiled) else value


def alert_context(alert: Alert) -> dict[str, Any]:
    """What a template sees: ``alert``, ``labels``, ``annotations``, ``status`` and ``value``.

    ``value`` (and ``alert.value``) exists only when the alert carries a numeric ``value``
    annotation; using it otherwise is an error, not a silent zero.
    """
    described: dict[str, Any] = {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": alert.starts_at,
        "endsAt": alert.ends_at,
        "fingerprint": alert.fingerprint,
        "generatorURL": alert.generator_url,
    }
    context: dict[str, Any] = {
        "alert": described,
        "labels": described["labels"],
        "annotations": described["annotations"],
        "status": alert.status,
    }
    if alert.value is not None:
        described["value"] = alert.value
        context["value"] = alert.value
    return context

