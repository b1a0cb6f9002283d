"""The guard stage: the last word on whether an action reaches a worker.

It sits after target resolution because guards decide per worker: a cooldown is per (rule,
worker), a pool bound depends on that worker's live pool size. Here the stage applies dry-run
(the global flag and a rule's ``dry_run``); idempotency, cooldowns, budgets and bounds plug in
behind the same :class:`Guards` interface.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .actions import Action
from .worker_facts import WorkerFacts


@dataclass(frozen=True)
class Verdict:
    """A guard's decision for one worker: send, or not (with the outcome and the reason)."""

    worker: str
    send: bool
    outcome: str | None = None
    reason: str | None = None


class Guards(Protocol):
    async def review(self, action: Action, workers: Sequence[WorkerFacts]) -> list[Verdict]:
        """Decide for each worker; called only for workers able to run the command."""


class DryRunGuards:
    """Lets everything through, except when dry-run is on globally or for the action's rule."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run

    async def review(self, action: Action, workers: Sequence[WorkerFacts]) -> list[Verdict]:
        reason = ("dry run (--dry-run): nothing sent" if self.dry_run
                  else f"dry run (rule {action.rule!r} has dry_run: true): nothing sent"
                  if action.policy.dry_run else None)
        if reason is None:
            return [Verdict(w.name, True) for w in workers]
        return [Verdict(w.name, False, "dry_run", reason) for w in workers]
