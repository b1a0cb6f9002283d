"""The rule file: what loads, and errors that name file, line, rule, field, value and expectation."""
from __future__ import annotations

import contextlib
import copy
import random
import textwrap
from pathlib import Path

import pytest
import yaml

import actuator
from actuator.payload import Alert
from actuator.rule_file import RuleFileError, load_rules, parse_rules

DESIGN_EXAMPLE = """
defaults: {cooldown: 5m, max_actions_per_hour: 12}
rules:
  - name: grow-pool-on-backlog
    match: {alertname: CeleryQueueBacklog}
    on: firing
    actions:
      - command: pool_grow
        workers: {consuming: "{{ labels.queue_name }}"}
        n: "{{ [ (alert.value | float / 100) | round(0, 'ceil') | int, 4 ] | min }}"
        max_pool: 16
  - name: shrink-when-resolved
    match: {alertname: CeleryQueueBacklog}
    on: resolved
    actions:
      - {command: pool_shrink, workers: {consuming: "{{ labels.queue_name }}"}, n: 1, min_pool: 2}
"""


def make_alert(labels: dict[str, str], status: str = "firing") -> Alert:
    return Alert(status=status, labels=labels, annotations={}, starts_at="2026-01-01T00:00:00Z",
                 ends_at="", generator_url="", fingerprint="f")


def test_the_design_example_loads_with_defaults_and_overrides():
    rules = parse_rules(DESIGN_EXAMPLE, "design.yml")
    grow, shrink = rules.rules
    assert (grow.name, grow.on, grow.policy.cooldown_seconds, grow.policy.max_actions_per_hour) == \
        ("grow-pool-on-backlog", frozenset({"firing"}), 300.0, 12)
    assert grow.actions[0].spec.name == "pool_grow" and grow.actions[0].bounds.max_pool == 16
    assert shrink.on == frozenset({"resolved"}) and shrink.actions[0].arguments == {"n": 1}
    assert shrink.actions[0].bounds.min_pool == 2
    described = rules.describe()["rules"][0]["actions"][0]
    assert described["workers"] == {"consuming": "{{ labels.queue_name }}"}


def test_on_is_not_read_as_a_yaml_boolean():
    """YAML 1.1 reads ``on`` as True; the rule file uses YAML 1.2 booleans."""
    rules = parse_rules("rules:\n- name: r\n  match: {a: b}\n  on: [firing, resolved]\n"
                        "  dry_run: true\n  actions: [{command: pool_grow, workers: all}]\n")
    assert rules.rules[0].on == frozenset({"firing", "resolved"}) and rules.rules[0].policy.dry_run is True


def test_matching_uses_equality_and_anchored_regexes_and_status():
    rules = parse_rules(textwrap.dedent("""
        rules:
          - name: high
            match: {alertname: Backlog}
            match_re: {queue_name: "high|urgent"}
            actions: [{command: pool_grow, workers: all}]
          - name: any-resolved
            match_re: {alertname: ".+"}
            on: resolved
            actions: [{command: pool_shrink, workers: all}]
          - name: no-team
            match: {team: ""}
            actions: [{command: pool_grow, workers: all}]
    """))
    names = lambda labels, status="firing": [r.name for r in rules.matching(make_alert(labels, status))]  # noqa: E731
    assert names({"alertname": "Backlog", "queue_name": "high", "team": "x"}) == ["high"]
    assert names({"alertname": "Backlog", "queue_name": "high-priority", "team": "x"}) == []
    assert names({"alertname": "Backlog", "queue_name": "xurgent", "team": "x"}) == []
    assert names({"alertname": "Backlog", "queue_name": "urgent"}) == ["high", "no-team"]
    assert names({"alertname": "Backlog", "queue_name": "urgent", "team": "x"}, "resolved") == ["any-resolved"]


def test_defaults_accept_prometheus_durations():
    rules = parse_rules("defaults: {cooldown: 1h30m, dry_run: true}\nrules:\n- name: r\n  match: {a: b}\n"
                        "  cooldown: 90\n  actions: [{command: pool_grow, workers: all}]\n")
    assert rules.defaults.cooldown_seconds == 5400 and rules.defaults.dry_run is True
    assert rules.rules[0].policy.cooldown_seconds == 90 and rules.rules[0].policy.dry_run is True


def test_dangerous_commands_load_with_a_warning_unless_allowed():
    text = ("defaults: {cooldown: 1h}\nrules:\n- name: stop\n  match: {a: b}\n"
            "  actions: [{command: shutdown, workers: all}]\n")
    assert "shutdown is not in 'allow'" in parse_rules(text, "r.yml").warnings[0]
    assert parse_rules("allow: [shutdown]\n" + text).warnings == ()


def test_rules_nothing_limits_load_with_a_warning():
    text = ("rules:\n- name: a\n  match: {a: b}\n  actions: [{command: pool_grow, workers: all}]\n"
            "- name: b\n  match: {a: c}\n  cooldown: 5m\n  actions: [{command: pool_grow, workers: all}]\n"
            "- name: c\n  match: {a: d}\n  actions: [{command: pool_grow, workers: all}]\n")
    assert parse_rules(text, "r.yml").warnings == (
        "r.yml: nothing limits how often rules 'a', 'c' act: no cooldown, no max_actions_per_hour (in the rule "
        "or in 'defaults') and no limits.max_actions_per_hour",)
    assert parse_rules("limits: {max_actions_per_hour: 30}\n" + text).warnings == ()


BROKEN = [
    # (rule file, expected fragments of the error message)
    ("rules:\n- name: grow\n  match: {alertname: X}\n  actions:\n  - command: pool_grow\n"
     "    workers: all\n    n: 0\n",
     ["r.yml:7", "rule 'grow'", "rules[0].actions[0].n", "got 0", "integer from 1 to 1000"]),
    ("rules:\n- name: grow\n  match: {alertname: X}\n  cooldwn: 5m\n  actions: [{command: pool_grow, workers: all}]\n",
     ["r.yml:4", "rule 'grow'", "rules[0].cooldwn", "unknown key 'cooldwn'", "cooldown"]),
    ("rules:\n- name: grow\n  match: {alertname: X}\n  actions:\n  - command: pool_grw\n    workers: all\n",
     ["r.yml:5", "rules[0].actions[0].command", "'pool_grw'", "pool_grow"]),
    ("rules:\n- name: a\n  match: {alertname: X}\n  actions:\n  - command: autoscale\n    workers: all\n"
     "    max: 2\n    min: 5\n",
     ["rule 'a'", "rules[0].actions[0].min", "got 5", "at most max (2)"]),
    ("rules:\n- name: a\n  match: {alertname: X}\n  actions:\n  - command: rate_limit\n    workers: all\n"
     "    task: demo.sleep\n    rate_limit: fast\n",
     ["r.yml:8", "rate_limit", "'fast'", '"200/m"']),
    ("rules:\n- name: a\n  match: {alertname: X}\n  actions:\n  - command: pool_grow\n"
     "    workers: {consuming: \"{{ labels.queue_name }\"}\n",
     ["r.yml:6", "rule 'a'", "workers.consuming", "template syntax error"]),
    ("rules:\n- name: a\n  match: {alertname: X}\n  actions:\n  - command: pool_grow\n    workers: some\n",
     ["rules[0].actions[0].workers", "'some'", "all, {name:"]),
    ("rules:\n- name: a\n  match: {alertname: X}\n  actions:\n  - command: autoscale\n    workers: all\n"
     "    max: \"{{ value }}\"\n",
     ["rules[0].actions[0].min", "autoscale requires min"]),
    ("rules:\n- name: a\n  match: {alertname: X}\n  actions:\n  - command: add_consumer\n    workers: all\n"
     "    queue: q\n    max_pool: 3\n",
     ["unknown key 'max_pool'"]),
    ("rules:\n- name: a\n  match_re: {queue_name: \"(\"}\n  actions: [{command: pool_grow, workers: all}]\n",
     ["r.yml:3", "rules[0].match_re.queue_name", "invalid regular expression"]),
    ("rules:\n- name: a\n  match: {code: 500}\n  actions: [{command: pool_grow, workers: all}]\n",
     ["rules[0].match.code", "got 500", "quote it"]),
    ("rules:\n- name: a\n  actions: [{command: pool_grow, workers: all}]\n",
     ["rule 'a'", "needs 'match' or 'match_re'"]),
    ("rules:\n- name: a\n  match: {a: b}\n  actions: [{command: pool_grow, workers: all}]\n"
     "- name: a\n  match: {a: c}\n  actions: [{command: pool_grow, workers: all}]\n",
     ["r.yml:5", "rules[1].name", "duplicate rule name"]),
    ("rules:\n- name: a\n  match: {a: b}\n  on: fired\n  actions: [{command: pool_grow, workers: all}]\n",
     ["rules[0].on", "'fired'", "firing, resolved"]),
    ("allow: [pool_grow]\nrules: []\n", ["r.yml:1", "allow[0]", "always allowed"]),
    ("defaults: {cooldown: soon}\nrules: []\n", ["defaults.cooldown", "'soon'", '"5m"']),
    ("version: 2\nrules: []\n", ["version", "got 2", "expected 1"]),
    ("rules:\n- name: a\n  match: {a: b}\n  actions:\n  - command: pool_target\n    workers: all\n"
     "    size: 3\n    max_pool: 2\n    min_pool: 4\n",
     ["rules[0].actions[0].min_pool", "at most max_pool (2)"]),
    # A bound that would do nothing is an error, not a silently missing guard.
    ("rules:\n- name: a\n  match: {a: b}\n  actions:\n  - command: pool_grow\n    workers: all\n"
     "    min_pool: 4\n",
     ["r.yml:7", "rules[0].actions[0].min_pool", "pool_grow takes no min_pool", "bounded by max_pool"]),
    ("rules:\n- name: a\n  match: {a: b}\n  actions:\n  - command: pool_shrink\n    workers: all\n"
     "    max_pool: 4\n",
     ["rules[0].actions[0].max_pool", "pool_shrink takes no max_pool", "bounded by min_pool"]),
    ("rules:\n- name: t\n  match: {a: b}\n  actions:\n  - command: pool_target\n    workers: all\n"
     "    size: 3\n    min_pool: 1\n    max_pool: 8\n    direction: upward\n",
     ["r.yml:10", "rules[0].actions[0].direction", "'upward'", "one of up, down, both"]),
    ("rules:\n- name: g\n  match: {a: b}\n  actions:\n  - command: pool_grow\n    workers: all\n"
     "    direction: up\n",
     ["rules[0].actions[0].direction", "unknown key 'direction'"]),
    ("limits: {max_pool: 6, min_pool: 2}\nrules:\n- name: t\n  match: {a: b}\n  actions:\n"
     "  - {command: pool_target, workers: all, size: 3, min_pool: 2, max_pool: 8}\n",
     ["r.yml:6", "rules[0].actions[0].max_pool", "got 8", "within the file's limits (min_pool 2, max_pool 6)"]),
    ("limits: {min_pool: 2}\nrules:\n- name: s\n  match: {a: b}\n  actions:\n"
     "  - {command: pool_shrink, workers: all, min_pool: 1}\n",
     ["rules[0].actions[0].min_pool", "got 1", "(min_pool 2, max_pool none)"]),
    ("limits: {min_pool: 4, max_pool: 3}\nrules: []\n", ["r.yml:1", "limits.min_pool", "at most max_pool (3)"]),
    ("rules:\n- name: api\n  match: {a: b}\n  actions: [{command: pool_grow, workers: all}]\n",
     ["rules[0].name", "'api'", "Flower-style API"]),
    ("rules:\n- name: '@manual'\n  match: {a: b}\n  actions: [{command: pool_grow, workers: all}]\n",
     ["rules[0].name", "not starting with '@'"]),
    ("rules:\n- name: a\n  match: {a: b}\n  actions:\n  - command: add_consumer\n    workers: all\n"
     "    queue: w1@host.celery.pidbox\n",
     ["r.yml:7", "rules[0].actions[0].queue", "not one of Celery's own"]),
    ("rules:\n- name: t\n  match: {a: b}\n  actions:\n  - command: pool_target\n    workers: all\n"
     "    size: 3\n    max_pool: 8\n",
     ["r.yml:5", "rule 't'", "rules[0].actions[0]", "missing required key 'min_pool'", "pool_target"]),
    ("rules:\n- name: t\n  match: {a: b}\n  actions:\n  - command: pool_target\n    workers: all\n"
     "    size: -1\n    min_pool: 1\n    max_pool: 8\n",
     ["r.yml:7", "rules[0].actions[0].size", "got -1", "integer from 0 to 1000"]),
    ("limits: {max_actions_per_hour: 0}\nrules: []\n", ["r.yml:1", "limits.max_actions_per_hour", "got 0", ">= 1"]),
    ("limits: {max_action_per_hour: 5}\nrules: []\n", ["limits.max_action_per_hour", "unknown key"]),
    ("rules: [\n", ["r.yml:2", "not valid YAML"]),
    ("", ["r.yml", "empty"]),
]


@pytest.mark.parametrize(("text", "fragments"), BROKEN, ids=[f"broken-{i}" for i in range(len(BROKEN))])
def test_broken_rule_files_fail_with_the_culprit(text, fragments):
    with pytest.raises(RuleFileError) as failure:
        parse_rules(text, "r.yml")
    for fragment in fragments:
        assert fragment in str(failure.value)


def test_limits_and_pool_target():
    rules = parse_rules("""
limits: {max_actions_per_hour: 60}
defaults: {cooldown: 2m}
rules:
  - name: track
    match: {alertname: CeleryQueueBacklog}
    cooldown: 0
    actions:
      - command: pool_target
        workers: {consuming: "{{ labels.queue_name }}"}
        size: "{{ (value / 100) | round(0, 'ceil') | int }}"
        min_pool: 2
        max_pool: 8
  - name: slow
    match: {alertname: Other}
    cooldown: 90m
    actions: [{command: pool_restart, workers: all}]
""", "r.yml")
    assert rules.limits.max_actions_per_hour == 60
    assert rules.describe()["limits"] == {"max_actions_per_hour": 60, "max_pool": None, "min_pool": None}
    (action,) = rules.rules[0].actions
    assert (action.spec.name, action.bounds.min_pool, action.bounds.max_pool) == ("pool_target", 2, 8)
    assert rules.rules[0].policy.cooldown_seconds == 0 and rules.longest_cooldown == 5400
    assert parse_rules("rules: []\n").limits.max_actions_per_hour is None


def test_unreadable_file_names_the_path(tmp_path):
    with pytest.raises(RuleFileError, match=r"missing\.yml: cannot read the rule file"):
        load_rules(tmp_path / "missing.yml")


def test_the_shipped_example_rule_file_loads():
    example = Path(actuator.__file__).parent / "rules.example.yml"
    rules = load_rules(example)
    assert len(rules.rules) == 5 and rules.warnings == ()
    assert rules.matching(make_alert({"alertname": "CeleryQueueBacklog", "queue_name": "celery"}))[0].name == \
        "track-backlog"


def _node_paths(node, path=()):
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _node_paths(child, path + (key,))


def test_damaged_rule_files_only_ever_fail_with_rule_file_errors():
    """Random damage to the example (wrong types, deleted keys) never escapes as another exception."""
    example = yaml.safe_load((Path(actuator.__file__).parent / "rules.example.yml").read_text())
    odd = [None, True, 0, -1, 1.5, "", "x", [], {}, [1], {"a": 1}, "{{", "{{ x }}", "all", {"name": 1},
           {"consuming": ""}, [None], "5m"]
    rng = random.Random(3)
    for _ in range(200):  # 20,000 found nothing either; each load compiles every template
        document = copy.deepcopy(example)
        for _ in range(rng.randint(1, 3)):
            *parents, key = rng.choice([p for p in _node_paths(document) if p])
            container = document
            for part in parents:
                container = container[part]
            if isinstance(container, dict) and rng.random() < 0.2:
                del container[key]
            else:
                container[key] = copy.deepcopy(rng.choice(odd))
        with contextlib.suppress(RuleFileError):
            parse_rules(yaml.safe_dump(document), "damaged.yml")
