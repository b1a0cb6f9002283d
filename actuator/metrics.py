"""The actuator's own metrics, on a registry of its own (never the process-global one).

Named ``celery_actuator_*`` next to the exporter's ``celery_exporter_*`` self-metrics, so a
dashboard can annotate every action and alert on a receiver that rejects payloads or cannot
reach the broker.
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .outcomes import SENT_OUTCOMES, ActionReport

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
            "celery_actuator_actions", "Actions decided, by rule (\"api\" for operators' actions: the "
            "Flower-style API and the console), command and outcome (sent, partial, failed, refused, dry_run, suppressed, no_targets, "
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
            "celery_actuator_suppressions", "Suppressions by rule (\"api\" for operators' actions) and "
            "reason: duplicate, paused (once per action), cooldown, budget, bounds, at_target (once per "
            "worker).", ["rule", "reason"], registry=r)
        self.paused = Gauge("celery_actuator_paused", "1 while actions are paused (POST /pause), as the "
                            "guard state says: shared by every replica on one --state-url.", registry=r)

    def action(self, report: ActionReport) -> None:
        command = report.command or ""
        self.actions.labels(report.rule or "api", command, report.outcome).inc()
        # Held back before anything ran (duplicate, paused): no duration worth a sample.
        if report.command is not None and report.outcome not in ("invalid", "refused") and not report.guard:
            self.action_duration.labels(command).observe(report.duration_seconds)
        if report.guard:
            self.suppressions.labels(report.rule or "api", report.guard).inc()
        for worker in report.workers:
            if worker.outcome in SENT_OUTCOMES:
                self.worker_replies.labels(command, worker.outcome).inc()
            if worker.guard:
                self.suppressions.labels(report.rule or "api", worker.guard).inc()
        if report.outcome == "invalid":
            self.errors.labels("render").inc()
        elif report.outcome == "broker_unavailable":
            self.errors.labels("broker").inc()
        elif report.outcome == "state_unavailable":
            self.errors.labels("state").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
