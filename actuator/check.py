"""``autopilot-actuator check``: what a rule file would do with a payload, sending nothing.

The ``promtool test rules`` of remediation: run it in CI on sample payloads. It loads the rule
file exactly as the server does, parses the payload exactly as the webhook does, renders and
validates every matching action, and, when a broker is reachable, resolves the targets against
live workers (inspection only). Exit status 1 when the rule file, the payload or any action is
broken; 0 otherwise.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .actions import Action, ActionError, render_action
from .control import BrokerUnavailable, RemoteControl
from .payload import Alert, Notification, PayloadError, parse_notification
from .pipeline import Assessment, assess
from .pool_bounds import Hold, PoolSize, plan_pool
from .rule_file import RuleFileError, load_rules
from .rules import BOTH, ActionTemplate, Limits, Rule, RuleSet
from .settings import ControlSettings
from .targets import TargetResolver


@dataclass
class CheckReport:
    rules: RuleSet
    notification: Notification
    alerts: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0
    # Why targets were not resolved, or None when they were.
    targets_unresolved: str | None = None


def run_check(rules_path: Path, payload_path: Path, control: ControlSettings | None,
              as_json: bool, out: TextIO) -> int:
    try:
        rules = load_rules(rules_path)
        notification = _load_payload(payload_path)
    except (RuleFileError, PayloadError) as exc:
        out.write(json.dumps({"error": str(exc)}) + "\n" if as_json else f"error: {exc}\n")
        return 1
    report = asyncio.run(_check(rules, notification, control))
    (_write_json if as_json else _write_text)(report, payload_path, out)
    return 1 if report.errors else 0


def _load_payload(path: Path) -> Notification:
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise PayloadError(f"cannot read the payload file {path}: {exc}") from None
    try:
        return parse_notification(body)
    except PayloadError as exc:
        raise PayloadError(f"{path}: {exc.message}", exc.field) from None


async def _check(rules: RuleSet, notification: Notification, settings: ControlSettings | None) -> CheckReport:
    report = CheckReport(rules, notification)
    control = RemoteControl(settings) if settings is not None else None
    resolver = TargetResolver(control) if control is not None else None
    if resolver is None:
        report.targets_unresolved = "no --broker-url given"
    try:
        for alert in notification.alerts:
            matched = rules.matching(alert)
            actions = [await _plan(report, rule, template, alert, resolver)
                       for rule in matched for template in rule.actions]
            report.alerts.append({"alertname": alert.name, "status": alert.status,
                                  "fingerprint": alert.fingerprint, "labels": dict(alert.labels),
                                  "matched_rules": [rule.name for rule in matched], "actions": actions})
    finally:
        if control is not None:
            control.close()
    return report


async def _plan(report: CheckReport, rule: Rule, template: ActionTemplate, alert: Alert,
                resolver: TargetResolver | None) -> dict[str, Any]:
    """One action as the server would see it: rendered, validated, its targets assessed."""
    try:
        action = render_action(template, rule, alert)
    except ActionError as exc:
        report.errors += 1
        return {"rule": rule.name, "command": template.spec.name, "error": str(exc), "rendered": exc.rendered}
    entry = action.describe()
    bounds = {key: value for key, value in vars(action.bounds).items() if value is not None}
    if action.spec.tracks and action.direction != BOTH:
        bounds["direction"] = action.direction
    if bounds:
        entry["bounds"] = bounds
    if action.spec.dangerous and action.spec.name not in report.rules.allow:
        entry["refused"] = f"{action.spec.name} is not in the rule file's 'allow' list"
    if resolver is not None and report.targets_unresolved is None:
        try:
            assessment = await assess(resolver, action)
        except BrokerUnavailable as exc:
            report.targets_unresolved = str(exc)
        else:
            entry["targets"] = {"workers": [w.describe() for w in assessment.able],
                                "refused": [w.describe() for w in assessment.refused],
                                "reason": assessment.reason}
            if action.spec.bounded:
                entry["targets"]["pool"] = _pool_plans(action, assessment, report.rules.limits)
    return entry


def _pool_plans(action: Action, assessment: Assessment, limits: Limits) -> dict[str, str]:
    """Per worker, what the bounds make of a pool action at the inspected pool size (the live
    service may also weigh a size it asked for moments before; cooldowns and budgets are not shown)."""
    plans: dict[str, str] = {}
    bounds = limits.bound(action.bounds)
    for facts in assessment.able:
        plan = plan_pool(action, facts, PoolSize(facts.pool_processes), bounds)
        if isinstance(plan, Hold):
            plans[facts.name] = f"nothing ({plan.reason})"
        else:
            arguments = " ".join(f"{key}={value}" for key, value in plan.arguments.items())
            plans[facts.name] = f"{plan.command} {arguments}" + (f" ({plan.note})" if plan.note else "")
    return plans


def _arguments(arguments: dict[str, Any]) -> str:
    return " ".join(f"{key}={value!r}" for key, value in arguments.items() if value is not None)


def _target(target: Any) -> str:
    if target == "all":
        return "all workers"
    (kind, value), = target.items()
    return f"worker {value!r}" if kind == "name" else f"workers consuming {value!r}"


def _write_text(report: CheckReport, payload_path: Path, out: TextIO) -> None:
    rules, notification = report.rules, report.notification
    out.write(f"rules: {rules.source}: {len(rules.rules)} rule(s)\n")
    for warning in rules.warnings:
        out.write(f"warning: {warning}\n")
    out.write(f"payload: {payload_path}: {notification.status}, receiver {notification.receiver!r}, "
              f"{len(notification.alerts)} alert(s)\n")
    out.write(f"targets: not resolved ({report.targets_unresolved})\n" if report.targets_unresolved
              else "targets: resolved by live inspection (nothing sent)\n")
    for alert in report.alerts:
        labels = ", ".join(f"{k}={v}" for k, v in alert["labels"].items())
        out.write(f"\nalert {alert['alertname']} [{alert['status']}] {{{labels}}}\n")
        if not alert["matched_rules"]:
            out.write("  no rule matched\n")
        for entry in alert["actions"]:
            if "error" in entry:
                out.write(f"  rule {entry['rule']}: {entry['command']}: ERROR {entry['error']}\n")
                continue
            bounds = "".join(f" {key}={value}" for key, value in entry.get("bounds", {}).items())
            out.write(f"  rule {entry['rule']}: {entry['command']} {_arguments(entry['arguments'])}{bounds} "
                      f"-> {_target(entry['target'])}\n")
            if "refused" in entry:
                out.write(f"    refused: {entry['refused']}\n")
            targets = entry.get("targets")
            if targets is not None:
                names = ", ".join(w["name"] for w in targets["workers"]) or "none"
                out.write(f"    would send to: {names}\n")
                for worker, plan in targets.get("pool", {}).items():
                    out.write(f"    {worker}: {plan}\n")
                for refused in targets["refused"]:
                    out.write(f"    refused on {refused['worker']}: {refused['detail']}\n")
                if targets["reason"]:
                    out.write(f"    {targets['reason']}\n")
    out.write(f"\n{report.errors} error(s)\n")


def _write_json(report: CheckReport, payload_path: Path, out: TextIO) -> None:
    out.write(json.dumps({
        "rules": str(report.rules.source),
        "payload": str(payload_path),
        "warnings": list(report.rules.warnings),
        "targets_resolved": report.targets_unresolved is None,
        "targets_unresolved_reason": report.targets_unresolved,
        "alerts": report.alerts,
        "errors": report.errors,
    }, indent=2) + "\n")
