"""The guard stage: the last word on whether an action reaches a worker, and what it sends.

In the order they apply:

1. **pause** — an operator's switch (``POST /pause``) holds every action, webhook and manual API;
   it is read before an alert's actions start and again in the step that records each command,
   so a pause that lands while targets are being resolved still holds it;
2. **idempotency** — one notification of an alert (fingerprint, startsAt, status) acts once per
   rule action: each action claims its own key before it runs, so a retry after a 503 resumes at
   the action that met the outage. A ``pool_target`` (target tracking) adds the alert's ``value``
   annotation to its key: a re-send carrying a new value is a new decision (still under
   cooldown, budgets and bounds), while the copies Alertmanager's retries and replicas deliver
   (identical annotations) still act once. A second claim makes the decision a ``duplicate``.
   A claim is given back when nothing was sent for a reason that may pass (no target answered,
   pause, cooldown, budget, a pool size unknown or settling) or when the broker or the state
   could not be reached, so the notification acts when it comes again;
3. per worker, **bounds** (``max_pool``/``min_pool``, narrowed by the file's ``limits``, and never
   fewer than one process; ``pool_target``), then **cooldown** per (rule, action, worker) and
   **budgets** per rule and for all rules and manual actions, checked and recorded in one atomic
   step of the guard state; then **dry-run** (global flag or the rule's), which records what
   would be sent and sends nothing.

Manual actions (the Flower-style API) pass pause, bounds (the file's ``limits``), the global
budget and dry-run; with no rule, no cooldown or rule budget applies to them.

Dry-run consults the same guards without recording: it shows what a live run would suppress,
and neither claims notifications nor starts cooldowns. Cooldowns and budgets count commands
that left for a worker (one per worker), whatever the worker answered; a command that never
left (broker unreachable) is taken back.

Pool sizes: ``pool_grow`` answers before a prefork pool starts its new processes (0-5 s later),
and a shrunk process leaves the inspection a moment after. So the size asked for is remembered
for ``--pool-settle-time`` and planned with next to the live one (see :mod:`actuator.pool_bounds`);
a worker's error reply (e.g. a shrink that found too few idle processes, after shrinking some)
forgets it, leaving the next action to live inspection.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .actions import Action
from .guard_state import (MANUAL_KEY, Claim, Duplicate, Grant, GuardState, PauseState, PoolExpectation, Refusal,
                          Reservation, Stale, iso)
from .outcomes import WorkerResult
from .payload import Alert
from .pool_bounds import Hold, PoolSize, plan_pool
from .rules import ActionTemplate, Limits, Rule
from .settings import GuardSettings
from .worker_facts import WorkerFacts

# A remembered pool size that keeps changing under a plan is re-read this often.
MAX_PLANS = 5


@dataclass(frozen=True)
class Verdict:
    """The guards' decision for one worker.

    When ``send`` is true, ``command`` and ``arguments`` are what to send (after bounds) and
    ``grant`` the recorded reservation; otherwise ``outcome`` (``dry_run`` or ``suppressed``),
    ``guard`` and ``reason`` say why not, with what would have been sent on a dry run.
    """

    worker: str
    send: bool
    command: str | None = None
    arguments: Mapping[str, Any] | None = None
    outcome: str | None = None
    guard: str | None = None
    reason: str | None = None
    note: str | None = None
    grant: Grant | None = None
    transient: bool = False

    def result(self, action: Action, outcome: str | None = None, detail: str | None = None) -> WorkerResult:
        """The worker's record: the reply's ``outcome`` and ``detail`` when sent, else why not.

        The command and arguments appear only where they differ from the action's own.
        """
        changed = self.command is not None and (self.command, dict(self.arguments or {})) != \
            (action.spec.name, action.celery_arguments)
        shown = {"command": self.command, "arguments": self.arguments} if changed else {}
        if not self.send:
            outcome, detail = self.outcome or "suppressed", self.reason
        return WorkerResult(self.worker, outcome or "", detail, self.guard, note=self.note,
                            transient=self.transient, **shown)


@dataclass(frozen=True)
class Admission:
    """Whether a rule action may act on an alert: ``claim`` held (None on a dry run), or
    ``guard``/``reason`` if not."""

    claim: Claim | None = None
    guard: str | None = None
    reason: str | None = None


def occurrence_key(alert: Alert, rule: Rule, template: ActionTemplate) -> str:
    """What makes one rule action's decision on one notification of an alert unique."""
    key: list[Any] = [alert.fingerprint, alert.starts_at, alert.status, rule.name, template.index]
    if template.spec.tracks:
        key.append(alert.annotations.get("value"))
    return json.dumps(key)


class Guards:
    def __init__(self, state: GuardState, settings: GuardSettings, limits: Limits, dry_run: bool) -> None:
        self.state = state
        self.settings = settings
        self.limits = limits
        self.dry_run = dry_run

    async def paused(self) -> PauseState | None:
        state = await self.state.pause_state()
        return state if state.paused else None

    async def admit(self, alert: Alert, rule: Rule, template: ActionTemplate) -> Admission:
        """Idempotency for one action of a rule that matched ``alert``.

        Only live actions claim; a dry-run one only looks, so it never keeps a live run from acting.
        """
        key = occurrence_key(alert, rule, template)
        live = not self.dry_run and not rule.policy.dry_run
        found = await (self.state.claim(key, self.settings.idempotency_ttl) if live else self.state.peek(key))
        if isinstance(found, Duplicate):
            value = f", value {alert.annotations.get('value')}" if template.spec.tracks else ""
            return Admission(guard="duplicate", reason=(
                f"duplicate: this notification of the alert (fingerprint {alert.fingerprint}, startsAt "
                f"{alert.starts_at}, {alert.status}{value}) was already handled at {iso(found.claimed_at)}"))
        return Admission(claim=found)

    async def release(self, admission: Admission) -> None:
        if admission.claim is not None:
            await self.state.release(admission.claim)

    async def review(self, action: Action, workers: Sequence[WorkerFacts]) -> list[Verdict]:
        """Decide for each worker (in name order, so budgets go to the same ones every time)."""
        return [await self._review(action, facts) for facts in sorted(workers, key=lambda f: f.name)]

    async def _review(self, action: Action, facts: WorkerFacts) -> Verdict:
        dry = ("dry run (--dry-run): nothing sent" if self.dry_run
               else f"dry run (rule {action.rule!r} has dry_run: true): nothing sent"
               if action.policy.dry_run else None)
        bounds = self.limits.bound(action.bounds)
        for _ in range(MAX_PLANS):
            command, arguments, note, pool = action.spec.name, action.celery_arguments, None, None
            if action.spec.bounded:
                remembered = await self.state.expected_pool(facts.name) if action.spec.resizes_pool else None
                # An autoscaler resizes its pool by itself: only live inspection knows its size.
                size = PoolSize(facts.pool_processes, None if facts.autoscaler else remembered)
                plan = plan_pool(action, facts, size, bounds)
                if isinstance(plan, Hold):
                    return Verdict(facts.name, False, outcome="suppressed", guard=plan.guard, reason=plan.reason,
                                   transient=plan.transient)
                command, arguments, note = plan.command, plan.arguments, plan.note
                if action.spec.resizes_pool:
                    pool = PoolExpectation(remembered, plan.size_after, self.settings.pool_settle_time)
            decided = await self._reserve(action, facts.name, pool, record=dry is None)
            if isinstance(decided, Stale):
                continue
            if isinstance(decided, Refusal):
                return Verdict(facts.name, False, command, arguments, "suppressed", decided.guard, decided.reason, note,
                               transient=True)
            if dry is not None:
                return Verdict(facts.name, False, command, arguments, "dry_run", reason=dry, note=note)
            return Verdict(facts.name, True, command, arguments, note=note, grant=decided)
        return Verdict(facts.name, False, outcome="suppressed", guard="bounds", transient=True,
                       reason=f"bounds: the pool size of {facts.name} kept changing under concurrent actions")

    async def _reserve(self, action: Action, worker: str, pool: PoolExpectation | None,
                       record: bool) -> Grant | Refusal | Stale:
        """Pause, cooldown and budgets, and the pool bookkeeping, checked and recorded."""
        policy = action.policy
        request = Reservation(
            rule=action.rule if action.rule is not None else MANUAL_KEY, worker=worker, action=action.index,
            cooldown=policy.cooldown_seconds, rule_budget=policy.max_actions_per_hour,
            global_budget=self.limits.max_actions_per_hour, pool=pool)
        return await self.state.reserve(request, record)

    async def failed(self, verdicts: Sequence[Verdict]) -> None:
        """Workers answered these commands with an error: their pool sizes are unknown now."""
        for verdict in verdicts:
            pool = verdict.grant.reservation.pool if verdict.grant is not None else None
            if pool is not None and pool.after is not None:
                await self.state.forget_pool(verdict.worker, pool.after)

    async def cancel(self, unsent: Sequence[Verdict]) -> None:
        """Take back the grants of commands that never left (the broker was unreachable)."""
        for verdict in unsent:
            if verdict.grant is not None:
                await self.state.cancel(verdict.grant)
