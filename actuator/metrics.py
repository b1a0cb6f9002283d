"""The actuator's own metrics, on a registry of its own (never the process-global one).

Named ``celery_actuator_*`` next to the exporter's ``celery_exporter_*`` self-metrics, so a
dashboard can annotate every action and alert on a receiver that rejects payloads or cannot
reach the broker.
"""
from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .outcomes import ACTION_OUTCOMES, API_RULE, SENT_OUTCOMES, ActionReport
from .rules import Limits, Rule, RuleSet

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ActuatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.notifications = Counter(
            "celery_actuator_notifications", "Webhook notifications received, by status "
            "(firing, resolved, or invalid for payloads rejected with 400).", ["status"], registry=r)
        self.alerts = Counter(
            "celery_actuator_alerts", "Alerts received in webhook notifications, by alert status.",
            ["status"], registry=r)
        self.actions = Counter(
            "celery_actuator_actions", "Actions decided, by rule (\"api\" for the Flower-style API), "
            "command and outcome (sent, partial, failed, refused, dry_run, suppressed, no_targets, "
            "invalid, broker_unavailable, state_unavailable).", ["rule", "command", "outcome"], registry=r)
        self.worker_replies = Counter(
            "celery_actuator_worker_replies", "Per-worker results of commands sent (ok, error, no_reply).",
            ["command", "outcome"], registry=r)
        self.action_duration = Histogram(
            "celery_actuator_action_duration_seconds", "Time from a decision to act to the last worker "
            "reply (target resolution, guards and remote control), by command.", ["command"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.errors = Counter(
            "celery_actuator_errors", "Errors by stage (payload, render, broker, state).", ["stage"], registry=r)
        self.http_requests = Counter(
            "celery_actuator_http_requests", "HTTP requests answered, by route and status code.",
            ["route", "code"], registry=r)
        self.rules_loaded = Gauge("celery_actuator_rules", "Rules loaded from the rule file.", registry=r)
        self.dry_run = Gauge("celery_actuator_dry_run", "1 when the actuator runs with --dry-run.", registry=r)
        self.suppressions = Counter(
            "celery_actuator_suppressions", "Suppressions by rule (\"api\" for the Flower-style API) and "
            "reason: duplicate, paused (once per action), cooldown, budget, bounds, at_target (once per "
            "worker); pre-created at 0 for every reason a loaded rule can meet.", ["rule", "reason"], registry=r)
        self.paused = Gauge("celery_actuator_paused", "1 while actions are paused (POST /pause), as the "
                            "guard state says: shared by every replica on one --state-url.", registry=r)

    def prepare(self, rules: RuleSet, api_commands: Iterable[str]) -> None:
        """Zero-valued series for every decision the loaded rules and the Flower-style API can
        record, so that ``increase()`` (and the dashboard's action annotations) see the first one:
        a counter that appears at 1 has not increased."""
        for status in ("firing", "resolved", "invalid"):
            self.notifications.labels(status)
        for status in ("firing", "resolved"):
            self.alerts.labels(status)
        for stage in ("payload", "render", "broker", "state"):
            self.errors.labels(stage)
        for rule in rules.rules:
            commands = {template.spec.name for template in rule.actions}
            self._prepare(rule.name, commands, suppressions(rule, rules.limits))
        api_commands = set(api_commands)
        reasons = ["paused", "bounds"] + (["budget"] if rules.limits.max_actions_per_hour is not None else [])
        self._prepare(API_RULE, api_commands, reasons)

    def _prepare(self, rule: str, commands: Iterable[str], reasons: Iterable[str]) -> None:
        for command in commands:
            for outcome in ACTION_OUTCOMES:
                self.actions.labels(rule, command, outcome)
            for outcome in SENT_OUTCOMES:
                self.worker_replies.labels(command, outcome)
        for reason in reasons:
            self.suppressions.labels(rule, reason)

    def action(self, report: ActionReport) -> None:
        command = report.command or ""
        self.actions.labels(report.rule or API_RULE, command, report.outcome).inc()
        # Held back before anything ran (duplicate, paused): no duration worth a sample.
        if report.command is not None and report.outcome not in ("invalid", "refused") and not report.guard:
            self.action_duration.labels(command).observe(report.duration_seconds)
        if report.guard:
            self.suppressions.labels(report.rule or API_RULE, report.guard).inc()
        for worker in report.workers:
            if worker.outcome in SENT_OUTCOMES:
                self.worker_replies.labels(command, worker.outcome).inc()
            if worker.guard:
                self.suppressions.labels(report.rule or API_RULE, worker.guard).inc()
        if report.outcome == "invalid":
            self.errors.labels("render").inc()
        elif report.outcome == "broker_unavailable":
            self.errors.labels("broker").inc()
        elif report.outcome == "state_unavailable":
            self.errors.labels("state").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def suppressions(rule: Rule, limits: Limits) -> list[str]:
    """The guards that can hold ``rule``'s actions."""
    reasons = ["duplicate", "paused"]
    if rule.policy.cooldown_seconds:
        reasons.append("cooldown")
    if rule.policy.max_actions_per_hour is not None or limits.max_actions_per_hour is not None:
        reasons.append("budget")
    if any(template.spec.bounded for template in rule.actions):
        reasons.append("bounds")
    if any(template.spec.tracks for template in rule.actions):
        reasons.append("at_target")
    return reasons
