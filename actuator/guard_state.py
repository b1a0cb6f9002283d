"""What the guards remember, and the one interface both places that remember it implement.

Guards need shared, durable memory: which alert notifications were already handled
(idempotency keys), when each rule's action last acted on each worker (cooldowns), how many
actions each rule, and all rules and manual actions together, took in the last hour (budgets),
the pool size the actuator last asked each worker for (a prefork pool shows new processes
seconds after ``pool_grow`` answers), and whether an operator paused the actuator.
:mod:`actuator.state_sqlite` keeps it in an embedded SQLite file (one replica; survives
restarts); :mod:`actuator.state_redis` keeps it in Redis, so several replicas behind one
Alertmanager act once.

Every check that leads to a write is one atomic step in either store (:meth:`GuardState.reserve`,
:meth:`GuardState.claim`): two requests, or two replicas, can never both pass a cooldown or a
budget, nor both claim a notification; a reservation reads the pause switch in the same step.
The decision itself is :func:`judge`, one function both stores call with what they read inside
their transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from .unavailable import Unavailable

# Budgets count actions over a rolling hour.
BUDGET_WINDOW = 3600.0
# The key operators' actions (the Flower-style API) are counted under: the global budget counts
# them; rule names cannot start with "@".
MANUAL_KEY = "@manual"


class StateUnavailable(Unavailable):
    """The guard state (Redis) cannot be reached: the webhook answers 503 and Alertmanager retries."""

    outcome = "state_unavailable"


class StateStoreError(RuntimeError):
    """The guard state cannot be opened at start-up (the service must not run without it)."""


@dataclass(frozen=True)
class Claim:
    """An idempotency key this request holds; ``token`` proves it when releasing."""

    key: str
    token: str


@dataclass(frozen=True)
class Duplicate:
    """The key was already claimed, at ``claimed_at`` (Unix seconds)."""

    key: str
    claimed_at: float


@dataclass(frozen=True)
class PoolExpectation:
    """The pool-size bookkeeping of one reservation.

    ``seen`` is the remembered size the plan started from (None: nothing was remembered, the
    plan used live inspection); the reservation fails as stale if another request changed it
    meanwhile. ``after`` is the size to remember once granted, for ``ttl`` seconds.
    """

    seen: int | None
    after: int | None
    ttl: float


@dataclass(frozen=True)
class Reservation:
    """One action for one worker, to be checked against pause, cooldown and budgets and recorded.

    ``rule`` is the rule's name, or :data:`MANUAL_KEY` for an operator's action; ``action`` the
    rule's action index: a cooldown is per (rule, action, worker), so a rule's second action is
    not held by the command its first one just sent. Manual actions have no cooldown or rule
    budget, but count toward the global budget.
    """

    rule: str
    worker: str
    action: int | None = None
    cooldown: float | None = None
    rule_budget: int | None = None
    global_budget: int | None = None
    pool: PoolExpectation | None = None


@dataclass(frozen=True)
class Snapshot:
    """What a store read, inside its transaction, for one reservation."""

    last_sent: float | None
    rule_sends: int
    all_sends: int
    pool_size: int | None
    pause: PauseState


@dataclass(frozen=True)
class Grant:
    """A recorded reservation; :meth:`GuardState.cancel` undoes it when the send never happened."""

    reservation: Reservation
    id: str


@dataclass(frozen=True)
class Refusal:
    """The guard state said no for now (``paused``, ``cooldown``, ``budget``): each may pass later."""

    guard: str
    reason: str


class Stale:
    """The remembered pool size changed under the plan: plan again with the new one."""


STALE = Stale()


@dataclass(frozen=True)
class PauseState:
    paused: bool
    by: str | None = None
    at: float | None = None
    reason: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"paused": self.paused, "by": self.by, "since": iso(self.at) if self.at else None,
                "reason": self.reason}

    def explain(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"actuator paused by {self.by} at {iso(self.at) if self.at else '?'}{why} (POST /resume to resume)"


RUNNING = PauseState(paused=False)


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


def judge(request: Reservation, snapshot: Snapshot, now: float) -> Refusal | Stale | None:
    """Pause, cooldown, then the rule's budget, then the global one, then the pool bookkeeping.

    Pause is checked here too, not only before an alert's actions start: a pause that lands
    while targets are being resolved still stops the command."""
    if snapshot.pause.paused:
        return Refusal("paused", snapshot.pause.explain())
    cooldown, last = request.cooldown, snapshot.last_sent
    who = "manual actions" if request.rule == MANUAL_KEY else f"rule {request.rule!r}"
    if cooldown and last is not None and now - last < cooldown:
        action = f" (action {request.action})" if request.action is not None else ""
        return Refusal("cooldown", f"cooldown: {who}{action} acted on {request.worker} {now - last:.1f}s ago; "
                                   f"cooldown {cooldown:g}s ({cooldown - (now - last):.1f}s left)")
    if request.rule_budget is not None and snapshot.rule_sends >= request.rule_budget:
        return Refusal("budget", f"budget: {who} took {snapshot.rule_sends} actions in the last hour; "
                                 f"its max_actions_per_hour is {request.rule_budget}")
    if request.global_budget is not None and snapshot.all_sends >= request.global_budget:
        return Refusal("budget", f"budget: {snapshot.all_sends} actions in the last hour (all rules and "
                                 f"manual actions); limits.max_actions_per_hour is {request.global_budget}")
    if request.pool is not None and snapshot.pool_size != request.pool.seen:
        return STALE
    return None


class GuardState(Protocol):
    """The guards' memory; every method may raise :class:`StateUnavailable`."""

    description: str

    async def claim(self, key: str, ttl: float) -> Claim | Duplicate:
        """Take ``key`` for ``ttl`` seconds unless someone holds it (atomic)."""

    async def peek(self, key: str) -> Duplicate | None:
        """Whether ``key`` is held, taking nothing (dry run)."""

    async def release(self, claim: Claim) -> None:
        """Give ``claim`` back (only if still ours), so a retry of the notification acts."""

    async def reserve(self, request: Reservation, record: bool) -> Grant | Refusal | Stale:
        """Judge ``request`` and, when it passes and ``record`` is true, record it: one atomic step.

        With ``record`` false (dry run) nothing is written and a pass comes back as a Grant that
        must not be cancelled.
        """

    async def cancel(self, grant: Grant) -> None:
        """Undo a grant whose command never left (the broker was unreachable): its sends, and
        the pool size it made remembered."""

    async def expected_pool(self, worker: str) -> int | None:
        """The pool size last asked of ``worker``, while it is remembered."""

    async def forget_pool(self, worker: str, size: int) -> None:
        """Drop the remembered size if it is still ``size`` (a failed command left the real size
        unknown)."""

    async def pause_state(self) -> PauseState: ...

    async def set_pause(self, state: PauseState) -> None: ...

    async def prune(self) -> int:
        """Drop what expired; return how many entries went."""

    async def close(self) -> None: ...
