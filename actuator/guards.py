"""The guard stage: the last word on whether an action reaches a worker, and what it sends.

In the order they apply:

1. **pause** — an operator's switch (``POST /pause``) holds every action, webhook and manual API;
2. **idempotency** — one notification of an alert (fingerprint, startsAt, status) acts once: its
   key is claimed before any of its actions; a second claim makes every decision for that alert
   a ``duplicate``. A claim is given back when the broker (or the state) could not be reached,
   so Alertmanager's retry acts;
3. per worker, **bounds** (``max_pool``/``min_pool``, ``pool_target``), then **cooldown** per
   (rule, worker) and **budgets** per rule and for all rules, checked and recorded in one atomic
   step of the guard state; then **dry-run** (global flag or the rule's), which records what
   would be sent and sends nothing.

Dry-run consults the same guards without recording: it shows what a live run would suppress,
and neither claims notifications nor starts cooldowns. Cooldowns and budgets count commands
that left for a worker (one per worker), whatever the worker answered; a command that never
left (broker unreachable) is taken back.

Pool sizes: ``pool_grow`` answers before a prefork pool starts its new processes (0-5 s later),
and a shrunk process leaves the inspection a moment after. So the size asked for is remembered
for ``--pool-settle-time`` and used instead of the live size meanwhile; a worker's error reply
(e.g. a shrink that found too few idle processes, after shrinking some) forgets it, leaving the
next action to live inspection.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .actions import Action
from .guard_state import (Claim, Duplicate, Grant, GuardState, PauseState, PoolExpectation, Refusal, Reservation,
                          Stale, iso)
from .outcomes import WorkerResult
from .payload import Alert
from .pool_bounds import Hold, PoolPlan, plan_pool
from .rules import Limits, Rule
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

    def result(self, action: Action, outcome: str | None = None, detail: str | None = None) -> WorkerResult:
        """The worker's record: the reply's ``outcome`` and ``detail`` when sent, else why not.

        The command and arguments appear only where they differ from the action's own.
        """
        changed = self.command is not None and (self.command, dict(self.arguments or {})) != \
            (action.spec.name, action.celery_arguments)
        shown = {"command": self.command, "arguments": self.arguments} if changed else {}
        if not self.send:
            outcome, detail = self.outcome or "suppressed", self.reason
        return WorkerResult(self.worker, outcome or "", detail, self.guard, note=self.note, **shown)


@dataclass(frozen=True)
class Admission:
    """Whether an alert's actions may go ahead: ``claim`` held, or ``guard``/``reason`` if not."""

    claim: Claim | None = None
    guard: str | None = None
    reason: str | None = None


def idempotency_key(alert: Alert) -> str:
    return json.dumps([alert.fingerprint, alert.starts_at, alert.status])


class Guards:
    def __init__(self, state: GuardState, settings: GuardSettings, limits: Limits, dry_run: bool) -> None:
        self.state = state
        self.settings = settings
        self.limits = limits
        self.dry_run = dry_run

    async def paused(self) -> PauseState | None:
        state = await self.state.pause_state()
        return state if state.paused else None

    async def admit(self, alert: Alert, rules: Sequence[Rule]) -> Admission:
        """Pause, then idempotency, for an alert some ``rules`` matched.

        A paused actuator claims nothing, so the notification acts when Alertmanager sends it
        again after a resume. Only rules that would send claim; dry-run ones only look.
        """
        pause = await self.paused()
        if pause is not None:
            return Admission(guard="paused", reason=pause.explain())
        key = idempotency_key(alert)
        live = not self.dry_run and any(not rule.policy.dry_run for rule in rules)
        found = await (self.state.claim(key, self.settings.idempotency_ttl) if live else self.state.peek(key))
        if isinstance(found, Duplicate):
            return Admission(guard="duplicate", reason=(
                f"duplicate: this notification of the alert (fingerprint {alert.fingerprint}, startsAt "
                f"{alert.starts_at}, {alert.status}) was already handled at {iso(found.claimed_at)}"))
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
        for _ in range(MAX_PLANS):
            command, arguments, note, pool = action.spec.name, action.celery_arguments, None, None
            if action.spec.resizes_pool:
                remembered = await self.state.expected_pool(facts.name)
                current = remembered if remembered is not None and not facts.autoscaler else facts.pool_processes
                plan = plan_pool(action, facts, current)
                if isinstance(plan, Hold):
                    return Verdict(facts.name, False, outcome="suppressed", guard=plan.guard, reason=plan.reason)
                command, arguments, note = plan.command, plan.arguments, plan.note
                pool = PoolExpectation(remembered, plan.size_after, self.settings.pool_settle_time)
            decided = await self._reserve(action, facts.name, pool, record=dry is None)
            if isinstance(decided, Stale):
                continue
            if isinstance(decided, Refusal):
                return Verdict(facts.name, False, command, arguments, "suppressed", decided.guard, decided.reason, note)
            if dry is not None:
                return Verdict(facts.name, False, command, arguments, "dry_run", reason=dry, note=note)
            return Verdict(facts.name, True, command, arguments, note=note, grant=decided)
        return Verdict(facts.name, False, outcome="suppressed", guard="bounds",
                       reason=f"bounds: the pool size of {facts.name} kept changing under concurrent actions")

    async def _reserve(self, action: Action, worker: str, pool: PoolExpectation | None,
                       record: bool) -> Grant | Refusal | Stale | None:
        """Cooldown and budgets (rule actions) and the pool bookkeeping, checked and recorded."""
        key = action.guard_key
        if key is None and pool is None:
            return None  # manual actions without a manual block: nothing to check or remember
        policy = action.policy
        request = Reservation(
            rule=key, worker=worker, cooldown=policy.cooldown_seconds,
            rule_budget=policy.max_actions_per_hour, global_budget=self.limits.max_actions_per_hour, pool=pool)
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
