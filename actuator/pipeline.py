"""The actuator's pipeline, one way from a notification to the audit log:

payload → alerts → rules (match) → render → validate → targets → capability → guards → control
→ audit.

:meth:`Pipeline.handle` runs a whole webhook notification; :meth:`Pipeline.execute` runs one
validated action (the Flower-style API enters there). Every decision is written to the audit
log before the caller gets its answer. A broker outage stops the notification at the action
that met it and propagates as :class:`BrokerUnavailable`, recorded, so the HTTP layer can ask
Alertmanager to retry.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .actions import Action, ActionError, render_action
from .audit import AuditLog, Context
from .control import BrokerUnavailable, RemoteControl
from .guards import Guards
from .metrics import ActuatorMetrics
from .outcomes import ActionReport, AlertReport, NotificationReport, WorkerResult, action_outcome
from .payload import Alert, Notification
from .rules import ActionTemplate, Rule, RuleSet
from .targets import TargetResolver
from .worker_facts import WorkerFacts, inspections_for, refusal

log = logging.getLogger(__name__)


@dataclass
class Assessment:
    """The live workers an action targets, split into those able to run it and those refused."""

    able: list[WorkerFacts] = field(default_factory=list)
    refused: list[WorkerResult] = field(default_factory=list)
    reason: str | None = None


async def assess(resolver: TargetResolver, action: Action) -> Assessment:
    """Resolve the target now and check each worker can run the command (sends nothing)."""
    resolution = await resolver.resolve(action.target, inspections_for(action.spec))
    assessment = Assessment(reason=resolution.reason)
    for facts in resolution.workers:
        why = refusal(action.spec, facts)
        if why is None:
            assessment.able.append(facts)
        else:
            assessment.refused.append(WorkerResult(facts.name, "refused", why))
    return assessment


class Pipeline:
    def __init__(self, rules: RuleSet, resolver: TargetResolver, control: RemoteControl,
                 guards: Guards, audit: AuditLog, metrics: ActuatorMetrics) -> None:
        self.rules = rules
        self.resolver = resolver
        self.control = control
        self.guards = guards
        self.audit = audit
        self.metrics = metrics

    async def handle(self, notification: Notification, principal: str | None,
                     payload: str) -> NotificationReport:
        notification_id = await self.audit.record_notification(
            principal=principal, outcome="received", payload=payload,
            receiver=notification.receiver, status=notification.status,
            group_key=notification.group_key, alert_count=len(notification.alerts))
        self.metrics.notifications.labels(notification.status).inc()
        report = NotificationReport(notification_id, notification.receiver, notification.status)
        try:
            for alert in notification.alerts:
                report.alerts.append(await self._alert(alert, Context("webhook", principal, notification_id)))
        except BrokerUnavailable as exc:
            report.broker_error = str(exc)
        await self.audit.finish_notification(notification_id, report.outcome, report.broker_error)
        return report

    async def _alert(self, alert: Alert, base: Context) -> AlertReport:
        self.metrics.alerts.labels(alert.status).inc()
        alert_report = AlertReport(alert.name, alert.fingerprint, alert.status, alert.labels, alert.starts_at)
        context = Context(base.source, base.principal, base.notification_id, alert_report)
        rules = self.rules.matching(alert)
        alert_report.rules = [rule.name for rule in rules]
        if not rules:
            await self.audit.record_decision(context, ActionReport(command=None, outcome="no_match",
                                                                   reason="no rule matched"))
        for rule in rules:
            for template in rule.actions:
                alert_report.actions.append(await self._template(template, rule, alert, context))
        return alert_report

    async def _template(self, template: ActionTemplate, rule: Rule, alert: Alert,
                        context: Context) -> ActionReport:
        try:
            action = render_action(template, rule, alert)
        except ActionError as exc:
            report = ActionReport(command=template.spec.name, outcome="invalid", rule=rule.name,
                                  arguments=exc.rendered, target=template.target.describe(),
                                  reason=str(exc))
            await self.record(context, report)
            return report
        return await self.execute(action, context, self.rules.allow)

    async def execute(self, action: Action, context: Context,
                      allow: frozenset[str] = frozenset()) -> ActionReport:
        """Run one validated action to the end and record it; re-raise a broker outage."""
        started = time.monotonic()
        report = ActionReport(command=action.spec.name, outcome="", rule=action.rule,
                              arguments=action.arguments, target=action.target.describe())
        try:
            if action.spec.dangerous and action.spec.name not in allow:
                report.outcome = "refused"
                report.reason = (f"{action.spec.name} is refused unless the rule file's 'allow' "
                                 f"lists it")
            else:
                await self._act(action, report)
        except BrokerUnavailable as exc:
            report.outcome = "broker_unavailable"
            report.reason = str(exc)
            raise
        finally:
            report.duration_seconds = time.monotonic() - started
            await self.record(context, report)
        return report

    async def _act(self, action: Action, report: ActionReport) -> None:
        assessment = await assess(self.resolver, action)
        results = {result.worker: result for result in assessment.refused}
        verdicts = await self.guards.review(action, assessment.able) if assessment.able else []
        for verdict in verdicts:
            if not verdict.send:
                results[verdict.worker] = WorkerResult(verdict.worker, verdict.outcome or "suppressed",
                                                       verdict.reason)
        chosen = [verdict.worker for verdict in verdicts if verdict.send]
        if chosen:
            replies = await self.control.send(action.spec.name, action.celery_arguments, chosen)
            for worker, reply in replies.items():
                results[worker] = (WorkerResult(worker, "no_reply", "no reply within the reply timeout")
                                   if reply is None else
                                   WorkerResult(worker, "ok" if reply.ok else "error", reply.text))
        report.workers = [results[name] for name in sorted(results)]
        report.outcome = action_outcome(report.workers)
        details = dict.fromkeys(w.detail for w in report.workers if w.outcome != "ok" and w.detail)
        report.reason = assessment.reason if not report.workers else "; ".join(details) or None

    async def record(self, context: Context, report: ActionReport) -> None:
        """Write a decision to the audit log, count it and log it."""
        await self.audit.record_decision(context, report)
        self.metrics.action(report)
        workers = ", ".join(f"{w.worker}: {w.outcome}" for w in report.workers)
        log.info("%s %s %s %s -> %s%s%s", context.source, report.rule or "-", report.command,
                 dict(report.arguments), report.outcome, f" [{workers}]" if workers else "",
                 f" ({report.reason})" if report.reason else "")
