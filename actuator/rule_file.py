"""Loading and checking the YAML rule file.

Everything that can be checked without an alert is checked here, so that a broken rule file
stops the server at start-up (and fails ``autopilot-actuator check`` in CI) instead of failing at
3 a.m.: unknown keys (a typo must not silently disable a guard), types, literal argument values,
template syntax, target shapes. Every error names the file, the line, the rule, the field, the
value found and what was expected.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NoReturn

import yaml
from jinja2 import TemplateSyntaxError

from .commands import COMMANDS, ArgumentError, CommandSpec
from .durations import parse_duration
from .guard_state import MANUAL_KEY
from .outcomes import API_RULE
from .rules import BOTH, DIRECTIONS, ActionTemplate, Bounds, GuardPolicy, Limits, Rule, RuleSet, TargetTemplate
from .templating import Compiled, compile_value

SUPPORTED_VERSION = 1
ALERT_STATUSES = ("firing", "resolved")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MISSING = object()

NodePath = tuple[Any, ...]


class RuleFileError(ValueError):
    """The rule file cannot be used; the message says where and why."""

    def __init__(self, source: str, message: str, *, line: int | None = None,
                 rule: str | None = None, field: str | None = None) -> None:
        where = f"{source}:{line}" if line else source
        parts = [where]
        if rule:
            parts.append(f"rule {rule}")
        if field:
            parts.append(field)
        super().__init__(": ".join(parts + [message]))
        self.source = source
        self.line = line
        self.rule = rule
        self.field = field
        self.message = message


def load_rules(path: str | Path) -> RuleSet:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(str(path), f"cannot read the rule file: {exc}") from None
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    document, lines = _load_yaml(text, source)
    return _Reader(source, lines).rule_set(document)


class _RuleLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans.

    YAML 1.1 reads ``on``, ``off``, ``yes`` and ``no`` as booleans, which would turn a rule's
    ``on: firing`` into ``True: firing``. Only true/false are booleans here.
    """


_RuleLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RuleLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _load_yaml(text: str, source: str) -> tuple[Any, dict[NodePath, int]]:
    """Parse YAML safely and remember the line of every node, for error messages."""
    loader = _RuleLoader(text)
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleFileError(source, f"not valid YAML: {problem}",
                            line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    lines: dict[NodePath, int] = {}

    def index(current: yaml.Node | None, path: NodePath) -> None:
        if current is None:
            return
        lines[path] = current.start_mark.line + 1
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    index(value, path + (key.value,))
        elif isinstance(current, yaml.SequenceNode):
            for i, item in enumerate(current.value):
                index(item, path + (i,))

    index(node, ())
    return document, lines


def _names(names: list[str]) -> str:
    """``rule 'a' acts`` or ``rules 'a', 'b' act``."""
    return ("rule {} acts" if len(names) == 1 else "rules {} act").format(", ".join(map(repr, names)))


def _field_name(path: NodePath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Reader:
    """Walks the parsed document, building the rule set or failing with the exact culprit."""

    def __init__(self, source: str, lines: dict[NodePath, int]) -> None:
        self.source = source
        self.lines = lines
        self.rule_label: str | None = None
        self.warnings: list[str] = []
        self.file_limits = Limits()

    def fail(self, path: NodePath, message: str) -> NoReturn:
        line = None
        for depth in range(len(path), -1, -1):
            line = self.lines.get(path[:depth])
            if line is not None:
                break
        raise RuleFileError(self.source, message, line=line, rule=self.rule_label,
                            field=_field_name(path) or None)

    def expect(self, value: Any, path: NodePath, expected: str) -> NoReturn:
        self.fail(path, f"got {value!r}; expected {expected}")

    def mapping(self, value: Any, path: NodePath, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.expect(value, path, f"a mapping with keys {', '.join(allowed)}")
        for key in value:
            if key not in allowed:
                self.fail(path + (key,), f"unknown key {key!r}; expected one of {', '.join(allowed)}")
        for key in required:
            if key not in value:
                self.fail(path, f"missing required key {key!r}")
        return value

    # -- the document ------------------------------------------------------------------------

    def rule_set(self, document: Any) -> RuleSet:
        if document is None:
            self.fail((), "the rule file is empty; expected a mapping with a 'rules' list")
        top = self.mapping(document, (), ("version", "defaults", "limits", "allow", "rules"), ("rules",))
        version = top.get("version", SUPPORTED_VERSION)
        if version != SUPPORTED_VERSION or isinstance(version, bool):
            self.expect(version, ("version",), f"{SUPPORTED_VERSION}")
        defaults = GuardPolicy().overridden(self.policy(top.get("defaults", {}), ("defaults",), whole=True))
        limits = self.file_limits = self.limits(top.get("limits", {}))
        allow = self.allow(top.get("allow", []))
        rules_value = top["rules"]
        if not isinstance(rules_value, list):
            self.expect(rules_value, ("rules",), "a list of rules")
        rules: list[Rule] = []
        names: dict[str, int] = {}
        for i, item in enumerate(rules_value):
            rule = self.rule(item, ("rules", i), i, defaults)
            if rule.name in names:
                self.fail(("rules", i, "name"), f"duplicate rule name; rules[{names[rule.name]}] "
                                                "has the same name and names must be unique")
            names[rule.name] = i
            for action in rule.actions:
                if action.spec.dangerous and action.spec.name not in allow:
                    self.warnings.append(
                        f"{self.source}: rule {rule.name!r} action {action.index}: "
                        f"{action.spec.name} is not in 'allow', so it will be refused")
            rules.append(rule)
        self.rule_label = None
        unlimited = [rule.name for rule in rules if not rule.policy.cooldown_seconds
                     and rule.policy.max_actions_per_hour is None]
        if unlimited and limits.max_actions_per_hour is None:
            self.warnings.append(
                f"{self.source}: nothing limits how often {_names(unlimited)}: no cooldown, no "
                "max_actions_per_hour (in the rule or in 'defaults') and no limits.max_actions_per_hour")
        return RuleSet(source=self.source, version=version, defaults=defaults, limits=limits, allow=allow,
                       rules=tuple(rules), warnings=tuple(self.warnings))

    def policy(self, value: Any, path: NodePath, whole: bool) -> dict[str, Any]:
        """Guard settings: the whole ``defaults`` mapping, or the overrides found in a rule."""
        keys = ("cooldown", "max_actions_per_hour", "dry_run")
        if whole:
            value = self.mapping(value, path, keys)
        found: dict[str, Any] = {}
        if "cooldown" in value:
            found["cooldown_seconds"] = self.duration(value["cooldown"], path + ("cooldown",))
        if "max_actions_per_hour" in value:
            found["max_actions_per_hour"] = self.count(value["max_actions_per_hour"],
                                                       path + ("max_actions_per_hour",))
        if "dry_run" in value:
            if not isinstance(value["dry_run"], bool):
                self.expect(value["dry_run"], path + ("dry_run",), "true or false")
            found["dry_run"] = value["dry_run"]
        return found

    def limits(self, value: Any) -> Limits:
        """``limits: {max_actions_per_hour, max_pool, min_pool}``: what every rule and every manual
        action obey together."""
        path = ("limits",)
        limits = self.mapping(value, path, ("max_actions_per_hour", "max_pool", "min_pool"))
        found = {key: self.count(limits[key], path + (key,)) for key in limits}
        if found.get("min_pool", 0) > found.get("max_pool", found.get("min_pool", 0)):
            self.expect(found["min_pool"], path + ("min_pool",), f"at most max_pool ({found['max_pool']})")
        return Limits(**found)

    def count(self, value: Any, path: NodePath) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.expect(value, path, "an integer >= 1")
        return value

    def duration(self, value: Any, path: NodePath) -> float:
        """A Prometheus-style duration (``90s``, ``5m``, ``1h30m``) or a number of seconds."""
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.expect(value, path, str(exc))

    def allow(self, value: Any) -> frozenset[str]:
        dangerous = sorted(name for name, spec in COMMANDS.items() if spec.dangerous)
        if not isinstance(value, list):
            self.expect(value, ("allow",), f"a list of commands among {', '.join(dangerous)}")
        for i, item in enumerate(value):
            if item not in dangerous:
                self.expect(item, ("allow", i), f"one of {', '.join(dangerous)} "
                                                "(the other commands are always allowed)")
        return frozenset(value)

    # -- rules ---------------------------------------------------------------------------------

    def rule(self, item: Any, path: NodePath, index: int, defaults: GuardPolicy) -> Rule:
        named = isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"].strip()
        self.rule_label = repr(item["name"]) if named else f"#{index + 1}"
        keys = ("name", "match", "match_re", "on", "cooldown", "max_actions_per_hour", "dry_run",
                "actions")
        rule = self.mapping(item, path, keys, ("name", "actions"))
        name = rule["name"]
        if not isinstance(name, str) or not name.strip():
            self.expect(name, path + ("name",), "a non-empty string")
        if name.startswith(MANUAL_KEY[0]):
            self.expect(name, path + ("name",), f"a name not starting with {MANUAL_KEY[0]!r} (reserved: "
                                                f"{MANUAL_KEY} counts the manual block's actions)")
        if name == API_RULE:
            self.expect(name, path + ("name",), f"another name ({API_RULE!r} is how /metrics names the "
                                                "Flower-style API's actions)")
        if "match" not in rule and "match_re" not in rule:
            self.fail(path, "a rule needs 'match' or 'match_re' (to act on every alert, "
                            "say so: match_re: {alertname: '.+'})")
        match = {key: self.label_value(value, path + ("match", key))
                 for key, value in self.labels(rule.get("match", {}), path + ("match",)).items()}
        match_re = {key: self.regex(value, path + ("match_re", key))
                    for key, value in self.labels(rule.get("match_re", {}), path + ("match_re",)).items()}
        actions_value = rule["actions"]
        if not isinstance(actions_value, list) or not actions_value:
            self.expect(actions_value, path + ("actions",), "a non-empty list of actions")
        return Rule(
            name=name,
            match=match,
            match_re=match_re,
            on=self.statuses(rule.get("on", "firing"), path + ("on",)),
            policy=defaults.overridden(self.policy(rule, path, whole=False)),
            actions=tuple(self.action(a, path + ("actions", i), i + 1) for i, a in enumerate(actions_value)),
        )

    def labels(self, value: Any, path: NodePath) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.expect(value, path, "a mapping of label names to values")
        for key in value:
            if not isinstance(key, str) or not _LABEL_NAME.fullmatch(key):
                self.expect(key, path, "label names like queue_name ([a-zA-Z_][a-zA-Z0-9_]*)")
        return value

    def label_value(self, value: Any, path: NodePath) -> str:
        if not isinstance(value, str):
            self.expect(value, path, f"a string (quote it: '{value}')")
        return value

    def regex(self, value: Any, path: NodePath) -> re.Pattern[str]:
        pattern = self.label_value(value, path)
        try:
            return re.compile(pattern)
        except re.error as exc:
            self.fail(path, f"invalid regular expression {pattern!r}: {exc}")

    def statuses(self, value: Any, path: NodePath) -> frozenset[str]:
        items = value if isinstance(value, list) else [value]
        if not items or any(item not in ALERT_STATUSES for item in items) or len(set(items)) != len(items):
            self.expect(value, path, "firing, resolved, or [firing, resolved]")
        return frozenset(items)

    # -- actions -------------------------------------------------------------------------------

    def action(self, item: Any, path: NodePath, index: int) -> ActionTemplate:
        if not isinstance(item, dict):
            self.expect(item, path, "an action mapping with 'command' and 'workers'")
        command = item.get("command", _MISSING)
        if command is _MISSING:
            self.fail(path, "missing required key 'command'")
        spec = COMMANDS.get(command) if isinstance(command, str) else None
        if spec is None:
            self.expect(command, path + ("command",), f"one of {', '.join(COMMANDS)}")
        for key in ("max_pool", "min_pool"):
            if key in item and spec.pool_bounds and key not in spec.pool_bounds:
                self.fail(path + (key,), f"{spec.name} takes no {key}: it would do nothing (a "
                                         f"{spec.name} is bounded by {' and '.join(spec.pool_bounds)})")
        direction = ("direction",) if spec.tracks else ()
        self.mapping(item, path, ("command", "workers", *spec.pool_bounds, *direction, *spec.argument_names),
                     ("workers",))
        arguments = {key: self.argument(spec, key, item[key], path + (key,))
                     for key in spec.argument_names if key in item}
        self.complete(spec, arguments, path)
        return ActionTemplate(
            index=index,
            spec=spec,
            target=self.target(item["workers"], path + ("workers",)),
            arguments=arguments,
            bounds=self.bounds(item, path, spec),
            direction=self.direction(item.get("direction", BOTH), path + ("direction",)),
        )

    def direction(self, value: Any, path: NodePath) -> str:
        if value not in DIRECTIONS:
            self.expect(value, path, f"one of {', '.join(DIRECTIONS)}")
        return value

    def argument(self, spec: CommandSpec, key: str, value: Any, path: NodePath) -> Any:
        try:
            compiled = compile_value(value)
        except TemplateSyntaxError as exc:
            self.fail(path, f"template syntax error: {exc.message} in {value!r}")
        if isinstance(compiled, Compiled):
            return compiled
        try:
            return spec.validate_one(key, value)
        except ArgumentError as exc:
            self.expect(value, path, exc.expected)

    def complete(self, spec: CommandSpec, arguments: dict[str, Any], path: NodePath) -> None:
        """Required arguments present; relations between literal arguments (min <= max) hold."""
        try:
            if any(isinstance(value, Compiled) for value in arguments.values()):
                for argument in spec.arguments:
                    if argument.required and argument.name not in arguments:
                        raise ArgumentError(argument.name, None,
                                            f"a value: {spec.name} requires {argument.name}")
            else:
                spec.validate(arguments)
        except ArgumentError as exc:
            self.fail(path + (exc.field,), exc.detail)

    def target(self, value: Any, path: NodePath) -> TargetTemplate:
        expected = 'all, {name: "<worker>"} or {consuming: "<queue>"}'
        if value == "all":
            return TargetTemplate("all")
        if not isinstance(value, dict) or len(value) != 1:
            self.expect(value, path, expected)
        (kind, raw), = value.items()
        if kind not in ("name", "consuming") or not isinstance(raw, str) or not raw:
            self.expect(value, path, expected)
        try:
            compiled = compile_value(raw)
        except TemplateSyntaxError as exc:
            self.fail(path + (kind,), f"template syntax error: {exc.message} in {raw!r}")
        return TargetTemplate(kind, compiled)

    def bounds(self, item: dict[str, Any], path: NodePath, spec: CommandSpec) -> Bounds:
        found: dict[str, int] = {}
        for key in ("max_pool", "min_pool"):
            if key in item:
                found[key] = self.count(item[key], path + (key,))
            elif spec.bounds_required:
                self.fail(path, f"missing required key {key!r}: {spec.name} keeps the pool "
                                "between min_pool and max_pool")
        if found.get("min_pool", 0) > found.get("max_pool", found.get("min_pool", 0)):
            self.expect(found["min_pool"], path + ("min_pool",), f"at most max_pool ({found['max_pool']})")
        limits = self.file_limits
        if limits.max_pool is not None or limits.min_pool is not None:
            low, high = limits.min_pool or 1, limits.max_pool
            for key, value in found.items():
                if value < low or (high is not None and value > high):
                    self.expect(value, path + (key,), f"a size within the file's limits "
                                                      f"(min_pool {low}, max_pool {high or 'none'})")
        return Bounds(**found)
