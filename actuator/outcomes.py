"""What happened to each action and each worker: the records the audit log, the metrics and
the HTTP answers are made of.

Per worker: ``ok`` / ``error`` (the worker answered and refused) / ``no_reply`` (sent, no answer
within the reply timeout) / ``refused`` (not sent: the worker cannot do it) / ``dry_run`` /
``suppressed`` (not sent: a guard said no; ``guard`` names it).

Per action: ``sent`` (every target answered ok), ``partial``, ``failed`` (sent, nobody answered
ok), ``refused``, ``dry_run``, ``suppressed``, ``no_targets``, ``invalid`` (render or validation
failed; nothing sent), ``broker_unavailable``, ``state_unavailable``; and ``no_match`` for an
alert no rule matched.

Guards (the ``guard`` of a suppression): ``duplicate`` and ``paused`` stop a whole action;
``paused`` (a pause that landed while the action was under way), ``cooldown``, ``budget``,
``bounds`` and ``at_target`` stop it for one worker.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .unavailable import Unavailable

SENT_OUTCOMES = ("ok", "error", "no_reply")
ACTION_OUTCOMES = ("sent", "partial", "failed", "refused", "dry_run", "suppressed", "no_targets", "invalid",
                   "broker_unavailable", "state_unavailable")
# How /metrics names the Flower-style API's actions, which have no rule.
API_RULE = "api"
# When no worker was sent anything, the action's outcome is the first of these that applies.
_NOT_SENT_PRECEDENCE = ("dry_run", "suppressed", "refused")


@dataclass(frozen=True)
class WorkerResult:
    """One worker's part of an action.

    ``detail`` is the worker's reply, or why nothing was sent. ``command`` and ``arguments`` are
    what this worker was (or, dry run, would have been) sent when that differs from the action
    itself: a grow clipped by ``max_pool``, the grow or shrink a ``pool_target`` became; ``note``
    says why.
    """

    worker: str
    outcome: str
    detail: str | None = None
    guard: str | None = None
    command: str | None = None
    arguments: Mapping[str, Any] | None = None
    note: str | None = None
    # Held for a reason that may pass (pause, cooldown, budget, a pool size unknown or settling).
    transient: bool = False

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"worker": self.worker, "outcome": self.outcome, "detail": self.detail}
        optional = {"guard": self.guard, "command": self.command, "note": self.note,
                    "arguments": dict(self.arguments) if self.arguments is not None else None}
        described.update({key: value for key, value in optional.items() if value is not None})
        return described


@dataclass
class ActionReport:
    command: str | None
    outcome: str
    rule: str | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)
    target: Any = None
    reason: str | None = None
    workers: list[WorkerResult] = field(default_factory=list)
    duration_seconds: float = 0.0
    # The guard that stopped the whole action (duplicate, paused), if one did.
    guard: str | None = None

    @property
    def retryable(self) -> bool:
        """Nothing was sent, for a reason that may pass (no target answered, a paused actuator,
        a cooldown, a budget, a pool size unknown or settling): the notification may act when
        Alertmanager sends it again. Anything sent, refused, invalid or at its bound is final."""
        if any(w.outcome in SENT_OUTCOMES for w in self.workers):
            return False
        return self.outcome == "no_targets" or self.guard == "paused" or any(w.transient for w in self.workers)

    @property
    def guards(self) -> list[str]:
        """Every guard that suppressed the action or any of its workers."""
        found = [self.guard] if self.guard else []
        found += [w.guard for w in self.workers if w.guard]
        return sorted(set(found))

    def describe(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "command": self.command,
            "arguments": dict(self.arguments),
            "target": self.target,
            "outcome": self.outcome,
            "reason": self.reason,
            "workers": [w.describe() for w in self.workers],
            "guards": self.guards,
            "duration_seconds": round(self.duration_seconds, 6),
        }


def action_outcome(workers: list[WorkerResult]) -> str:
    """Summarise per-worker results into the action's outcome."""
    if not workers:
        return "no_targets"
    sent = [w for w in workers if w.outcome in SENT_OUTCOMES]
    if not sent:
        present = {w.outcome for w in workers}
        return next(o for o in _NOT_SENT_PRECEDENCE if o in present)
    ok = sum(1 for w in sent if w.outcome == "ok")
    if ok == len(workers):
        return "sent"
    return "failed" if ok == 0 else "partial"


@dataclass
class AlertReport:
    alertname: str
    fingerprint: str
    status: str
    labels: Mapping[str, str]
    starts_at: str
    rules: list[str] = field(default_factory=list)
    actions: list[ActionReport] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "alertname": self.alertname,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "startsAt": self.starts_at,
            "labels": dict(self.labels),
            "matched_rules": list(self.rules),
            "actions": [a.describe() for a in self.actions],
        }


@dataclass
class NotificationReport:
    notification_id: int | None
    receiver: str
    status: str
    alerts: list[AlertReport] = field(default_factory=list)
    # What could not be reached (broker or guard state): Alertmanager should retry.
    unavailable: Unavailable | None = None

    @property
    def outcome(self) -> str:
        return self.unavailable.outcome if self.unavailable else "handled"

    def describe(self) -> dict[str, Any]:
        actions = [a for alert in self.alerts for a in alert.actions]
        described: dict[str, Any] = {
            "status": self.outcome,
            "notification_id": self.notification_id,
            "receiver": self.receiver,
            "alert_status": self.status,
            "summary": {
                "alerts": len(self.alerts),
                "matched": sum(1 for alert in self.alerts if alert.rules),
                "actions": len(actions),
                "by_outcome": dict(Counter(a.outcome for a in actions)),
            },
            "alerts": [alert.describe() for alert in self.alerts],
        }
        if not any(alert.rules for alert in self.alerts):
            described["message"] = "no rule matched"
        if self.unavailable:
            described["error"] = str(self.unavailable)
        return described

