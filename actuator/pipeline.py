"""The actuator's pipeline, one way from a notification to the audit log:

payload → alerts → rules (match) → pause → per action: idempotency → render → validate → targets →
capability → guards (bounds, pause, cooldown, budgets, dry-run) → control → audit.

:meth:`Pipeline.handle` runs a whole webhook notification; :meth:`Pipeline.execute` runs one
validated action (the Flower-style API enters there). Every decision is written to the audit
log before the caller gets its answer. A broker (or guard state) outage stops the notification
at the action that met it and propagates as :class:`Unavailable`, recorded, with that action's
idempotency claim given back (the actions before it keep theirs), so the HTTP layer can ask
Alertmanager to retry and the retry resumes there.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .actions import Action, ActionError, render_action
from .audit import AuditLog, Context
from .control import RemoteControl, Reply
from .guards import Admission, Guards, Verdict
from .metrics import ActuatorMetrics
from .outcomes import ActionReport, AlertReport, NotificationReport, WorkerResult, action_outcome
from .payload import Alert, Notification
from .rules import ActionTemplate, Rule, RuleSet
from .targets import TargetResolver
from .unavailable import Unavailable
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
                # Appended first: a 503's answer still shows what was decided before the outage.
                alert_report = AlertReport(alert.name, alert.fingerprint, alert.status, alert.labels, alert.starts_at)
                report.alerts.append(alert_report)
                await self._alert(alert, alert_report, Context("webhook", principal, notification_id, alert_report))
        except Unavailable as exc:
            report.unavailable = exc
        await self.audit.finish_notification(notification_id, report.outcome,
                                             str(report.unavailable) if report.unavailable else None)
        return report

    async def _alert(self, alert: Alert, alert_report: AlertReport, context: Context) -> None:
        """Decide every action of every rule ``alert`` matches, into ``alert_report``."""
        self.metrics.alerts.labels(alert.status).inc()
        rules = self.rules.matching(alert)
        alert_report.rules = [rule.name for rule in rules]
        if not rules:
            await self.audit.record_decision(context, ActionReport(command=None, outcome="no_match",
                                                                   reason="no rule matched"))
            return
        try:
            pause = await self.guards.paused()
        except Unavailable as exc:
            await self._held_back(rules, context, alert_report, exc.outcome, str(exc))
            raise
        if pause is not None:
            # Nothing claimed: the notification acts when Alertmanager sends it again after a resume.
            await self._held_back(rules, context, alert_report, "suppressed", pause.explain(), "paused")
            return
        for rule in rules:
            for template in rule.actions:
                alert_report.actions.append(await self._occurrence(template, rule, alert, context))

    async def _occurrence(self, template: ActionTemplate, rule: Rule, alert: Alert, context: Context) -> ActionReport:
        """One rule action on one notification of an alert, under its own idempotency claim.

        On an outage the decision is recorded, put in ``context.alert`` (the 503's answer shows
        it) and the exception re-raised."""
        assert context.alert is not None
        try:
            admission = await self.guards.admit(alert, rule, template)
        except Unavailable as exc:
            context.alert.actions.append(await self._held(template, rule, context, exc.outcome, str(exc)))
            raise
        if admission.guard is not None:
            return await self._held(template, rule, context, "suppressed", admission.reason, admission.guard)
        try:
            report = await self._template(template, rule, alert, context)
        except Unavailable as exc:
            # execute() recorded it in full; the answer says what stopped it.
            context.alert.actions.append(_unrendered(template, rule, exc.outcome, str(exc)))
            await self._release(admission)
            raise
        if report.retryable:
            await self._release(admission)
        return report

    async def _held(self, template: ActionTemplate, rule: Rule, context: Context, outcome: str,
                    reason: str | None, guard: str | None = None) -> ActionReport:
        """Record an action held back before it was even rendered: paused, duplicate, or unavailable."""
        report = _unrendered(template, rule, outcome, reason, guard)
        await self.record(context, report)
        return report

    async def _held_back(self, rules: Sequence[Rule], context: Context, alert_report: AlertReport,
                         outcome: str, reason: str | None, guard: str | None = None) -> None:
        for rule in rules:
            for template in rule.actions:
                alert_report.actions.append(await self._held(template, rule, context, outcome, reason, guard))

    async def _release(self, admission: Admission) -> None:
        """Give the claim back so the notification acts when it comes again; if even that fails,
        the key expires."""
        try:
            await self.guards.release(admission)
        except Unavailable as exc:
            log.warning("could not release an idempotency claim (%s); it expires on its own", exc)

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
            elif (pause := await self.guards.paused()) is not None:
                report.outcome, report.guard, report.reason = "suppressed", "paused", pause.explain()
            else:
                await self._act(action, report)
        except Unavailable as exc:
            report.outcome = exc.outcome
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
                results[verdict.worker] = verdict.result(action)
        chosen = [verdict for verdict in verdicts if verdict.send]
        replies = await self._send(chosen)
        try:
            await self.guards.failed([v for v in chosen if (reply := replies[v.worker]) is not None and not reply.ok])
        except Unavailable as exc:
            # The commands left: what was sent is recorded as sent. The remembered sizes expire.
            log.warning("could not forget the pool sizes of workers that answered with an error (%s)", exc)
        for verdict in chosen:
            results[verdict.worker] = verdict.result(action, *_reply_outcome(replies[verdict.worker]))
        report.workers = [results[name] for name in sorted(results)]
        report.outcome = action_outcome(report.workers)
        details = dict.fromkeys(w.detail for w in report.workers if w.outcome != "ok" and w.detail)
        report.reason = assessment.reason if not report.workers else "; ".join(details) or None

    async def _send(self, chosen: Sequence[Verdict]) -> dict[str, Reply | None]:
        """Send each worker its command: one broadcast per distinct command and arguments (bounds
        may clip a grow differently per worker). Grants of what never left are taken back."""
        groups: dict[tuple[str, str], list[Verdict]] = {}
        for verdict in chosen:
            assert verdict.command is not None
            groups.setdefault((verdict.command, repr(sorted((verdict.arguments or {}).items()))), []).append(verdict)
        batches = list(groups.values())
        answers = await asyncio.gather(*(self._broadcast(batch) for batch in batches), return_exceptions=True)
        replies: dict[str, Reply | None] = {}
        failure: BaseException | None = None
        for batch, answer in zip(batches, answers, strict=True):
            if isinstance(answer, BaseException):
                failure = failure or answer
                try:
                    await self.guards.cancel(batch)
                except Unavailable as exc:
                    log.warning("could not take back the grants of commands that never left (%s)", exc)
            else:
                replies.update(answer)
        if failure is not None:
            raise failure
        return replies

    async def _broadcast(self, batch: Sequence[Verdict]) -> Mapping[str, Reply | None]:
        first = batch[0]
        assert first.command is not None
        return await self.control.send(first.command, dict(first.arguments or {}), [v.worker for v in batch])

    async def record(self, context: Context, report: ActionReport) -> None:
        """Write a decision to the audit log, count it and log it."""
        await self.audit.record_decision(context, report)
        self.metrics.action(report)
        workers = ", ".join(f"{w.worker}: {w.outcome}" for w in report.workers)
        log.info("%s %s %s %s -> %s%s%s", context.source, report.rule or "-", report.command,
                 dict(report.arguments), report.outcome, f" [{workers}]" if workers else "",
                 f" ({report.reason})" if report.reason else "")


def _unrendered(template: ActionTemplate, rule: Rule, outcome: str, reason: str | None,
                guard: str | None = None) -> ActionReport:
    return ActionReport(command=template.spec.name, outcome=outcome, rule=rule.name,
                        target=template.target.describe(), reason=reason, guard=guard)


def _reply_outcome(reply: Reply | None) -> tuple[str, str]:
    if reply is None:
        return "no_reply", "no reply within the reply timeout"
    return ("ok" if reply.ok else "error"), reply.text
