"""Rules as loaded from the rule file, and which alerts they match.

A rule matches an alert by label equality (``match``) and fully anchored regular expressions
(``match_re``), the way Alertmanager's routes do, and only for the notification statuses it is
``on``. Its actions are templates still to be rendered against each alert.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .commands import CommandSpec
from .payload import Alert
from .templating import Value, describe

# Which way a pool_target may move a pool.
UP, DOWN, BOTH = "up", "down", "both"
DIRECTIONS = (UP, DOWN, BOTH)


@dataclass(frozen=True)
class GuardPolicy:
    """The guard settings that apply to a rule: the file's ``defaults`` with the rule's overrides."""

    cooldown_seconds: float | None = None
    max_actions_per_hour: int | None = None
    dry_run: bool = False

    def overridden(self, overrides: Mapping[str, Any]) -> GuardPolicy:
        return replace(self, **overrides)

    def describe(self) -> dict[str, Any]:
        return {"cooldown_seconds": self.cooldown_seconds,
                "max_actions_per_hour": self.max_actions_per_hour,
                "dry_run": self.dry_run}


@dataclass(frozen=True)
class Bounds:
    """Pool-size bounds of a pool action (enforced by the guards); None where not set."""

    max_pool: int | None = None
    min_pool: int | None = None


@dataclass(frozen=True)
class Limits:
    """File-wide limits, for every rule and for manual actions (the Flower-style API): the
    blast-radius cap on actions of all of them together, and the pool sizes none may leave."""

    max_actions_per_hour: int | None = None
    max_pool: int | None = None
    min_pool: int | None = None

    def bound(self, bounds: Bounds) -> Bounds:
        """``bounds`` narrowed by the file-wide pool limits (the tighter of each)."""
        highs = [value for value in (bounds.max_pool, self.max_pool) if value is not None]
        lows = [value for value in (bounds.min_pool, self.min_pool) if value is not None]
        return Bounds(min(highs, default=None), max(lows, default=None))

    def describe(self) -> dict[str, Any]:
        return {"max_actions_per_hour": self.max_actions_per_hour, "max_pool": self.max_pool,
                "min_pool": self.min_pool}


@dataclass(frozen=True)
class TargetTemplate:
    """Which workers an action goes to: one named worker, the consumers of a queue, or all."""

    kind: str  # "name" | "consuming" | "all"
    value: Value = None

    def describe(self) -> Any:
        return "all" if self.kind == "all" else {self.kind: describe(self.value)}


@dataclass(frozen=True)
class ActionTemplate:
    index: int
    spec: CommandSpec
    target: TargetTemplate
    arguments: Mapping[str, Value]
    bounds: Bounds = field(default_factory=Bounds)
    # pool_target: which way it may move the pool (up, down or both).
    direction: str = BOTH

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"command": self.spec.name, "workers": self.target.describe()}
        described.update({key: describe(value) for key, value in self.arguments.items()})
        described.update({key: value for key, value in vars(self.bounds).items() if value is not None})
        if self.spec.tracks:
            described["direction"] = self.direction
        return described


@dataclass(frozen=True)
class Rule:
    name: str
    match: Mapping[str, str]
    match_re: Mapping[str, re.Pattern[str]]
    on: frozenset[str]
    policy: GuardPolicy
    actions: tuple[ActionTemplate, ...]

    def matches(self, alert: Alert) -> bool:
        """Alertmanager's semantics: a missing label is the empty string, regexes are anchored."""
        if alert.status not in self.on:
            return False
        labels = alert.labels
        return (all(labels.get(key, "") == value for key, value in self.match.items())
                and all(pattern.fullmatch(labels.get(key, "")) for key, pattern in self.match_re.items()))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "match": dict(self.match),
            "match_re": {key: pattern.pattern for key, pattern in self.match_re.items()},
            "on": sorted(self.on),
            **self.policy.describe(),
            "actions": [action.describe() for action in self.actions],
        }


@dataclass(frozen=True)
class RuleSet:
    source: str
    rules: tuple[Rule, ...]
    defaults: GuardPolicy = field(default_factory=GuardPolicy)
    limits: Limits = field(default_factory=Limits)
    allow: frozenset[str] = frozenset()
    version: int = 1
    warnings: tuple[str, ...] = ()

    def matching(self, alert: Alert) -> list[Rule]:
        return [rule for rule in self.rules if rule.matches(alert)]

    @property
    def longest_cooldown(self) -> float:
        """The longest cooldown of any rule: how long a send must be remembered."""
        return max((rule.policy.cooldown_seconds or 0.0 for rule in self.rules), default=0.0)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "version": self.version,
            "defaults": self.defaults.describe(),
            "limits": self.limits.describe(),
            "allow": sorted(self.allow),
            "warnings": list(self.warnings),
            "rules": [rule.describe() for rule in self.rules],
        }
