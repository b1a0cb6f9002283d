"""What live inspection says about a worker, and whether a command can work on it.

Sending ``pool_grow`` to a solo worker earns an ``AttributeError`` from the worker; sending it to
an autoscaling worker earns a refusal. Both are known before sending from ``inspect stats``, so
the actuator refuses with a reason a human understands instead of relaying a worker's traceback.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .commands import CommandSpec, Requirement

# The inspection each requirement needs answered by the target worker.
INSPECTION = {
    Requirement.RESIZABLE_POOL: "stats",
    Requirement.SIZABLE_POOL: "stats",
    Requirement.AUTOSCALER: "stats",
    Requirement.POOL_RESTARTS: "conf",
}

# Celery's pool modules and the names the worker's -P option uses for them.
_POOL_NAMES = {"prefork": "prefork", "solo": "solo", "thread": "threads",
               "eventlet": "eventlet", "gevent": "gevent"}
FIXED_SIZE_POOLS = frozenset({"solo", "threads"})


@dataclass(frozen=True)
class WorkerFacts:
    """One worker as inspection saw it; fields are None where that inspection was not asked."""

    name: str
    queues: tuple[str, ...] | None = None
    pool: str | None = None
    pool_processes: int | None = None
    autoscaler: Mapping[str, Any] | None = None
    pool_restarts: bool | None = None

    @classmethod
    def from_replies(cls, name: str, replies: Mapping[str, Any]) -> WorkerFacts:
        """Build from the replies of ``active_queues``, ``stats`` and ``conf`` (any subset)."""
        facts: dict[str, Any] = {}
        if "active_queues" in replies:
            facts["queues"] = queue_names(replies["active_queues"])
        stats = replies.get("stats")
        if isinstance(stats, dict):
            pool = stats.get("pool") if isinstance(stats.get("pool"), dict) else {}
            facts["pool"] = pool_name(pool.get("implementation"))
            facts["pool_processes"] = _pool_size(pool)
            facts["autoscaler"] = stats.get("autoscaler") or None
        conf = replies.get("conf")
        if isinstance(conf, dict):
            # conf() lists settings changed from Celery's defaults; the default is off.
            facts["pool_restarts"] = bool(conf.get("worker_pool_restarts", False))
        return cls(name=name, **facts)

    def describe(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if value is not None}


def queue_names(active_queues: Any) -> tuple[str, ...]:
    """The queue names in a worker's ``active_queues`` reply."""
    if not isinstance(active_queues, list):
        return ()
    return tuple(q["name"] for q in active_queues if isinstance(q, dict) and isinstance(q.get("name"), str))


def pool_name(implementation: Any) -> str | None:
    """``celery.concurrency.prefork:TaskPool`` → ``prefork``; custom pools keep their full path."""
    if not isinstance(implementation, str):
        return None
    module = implementation.split(":")[0]
    if module.startswith("celery.concurrency."):
        return _POOL_NAMES.get(module.rsplit(".", 1)[1], implementation)
    return implementation


def _pool_size(pool: Mapping[str, Any]) -> int | None:
    processes = pool.get("processes")
    if isinstance(processes, list):
        return len(processes)
    concurrency = pool.get("max-concurrency")
    return concurrency if isinstance(concurrency, int) else None


def inspections_for(spec: CommandSpec) -> frozenset[str]:
    return frozenset(INSPECTION[requirement] for requirement in spec.requires)


def refusal(spec: CommandSpec, facts: WorkerFacts) -> str | None:
    """Why ``spec`` would fail on this worker, or None if nothing known stands in the way.

    A pool this module does not know (a custom pool) gets the benefit of the doubt: the command
    is sent and the worker's own answer is recorded.
    """
    for requirement in spec.requires:
        resizing = requirement in (Requirement.RESIZABLE_POOL, Requirement.SIZABLE_POOL)
        if resizing and facts.pool in FIXED_SIZE_POOLS:
            return f"the {facts.pool} pool cannot grow or shrink"
        if requirement is Requirement.RESIZABLE_POOL and facts.autoscaler:
            return f"worker uses --autoscale; use autoscale (not {spec.name})"
        if requirement is Requirement.AUTOSCALER and facts.pool is not None and not facts.autoscaler:
            return "worker was not started with --autoscale, so autoscale cannot change it"
        if requirement is Requirement.POOL_RESTARTS and facts.pool_restarts is False:
            return "worker_pool_restarts is off in the worker's configuration"
    return None
