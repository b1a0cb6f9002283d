"""alerts/actuator-rules.yml against the captured Alertmanager payloads in alerts/samples/.

Until `autopilot-actuator check` runs this file for every sample (the lead adds that test once
the actuator's rule syntax is settled), this renders each templated argument the way the
actuator design says (sandboxed Jinja, undefined names are errors, `value` from the `value`
annotation) and checks the result for the story the samples tell.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from demo.bundle_config import ALERTS_DIR, alert_names, load_yaml

RULES_FILE = ALERTS_DIR / "actuator-rules.yml"
SAMPLES_DIR = ALERTS_DIR / "samples"
ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined)


def rules() -> list[dict[str, Any]]:
    return load_yaml(RULES_FILE)["rules"]


def statuses(rule: dict[str, Any]) -> list[str]:
    """The rule's `on:`. PyYAML reads YAML 1.1, where a bare `on` key is the boolean True."""
    on = rule.get("on", rule.get(True, "firing"))
    return [on] if isinstance(on, str) else list(on)


def render_actions(rule: dict[str, Any], status: str) -> list[dict[str, Any]]:
    """Every action of ``rule`` with its templates rendered for the matching sample payload."""
    payload = json.loads((SAMPLES_DIR / f"{rule['match']['alertname']}.{status}.json").read_text())
    (alert,) = payload["alerts"]
    value = float(alert["annotations"]["value"])
    context = {"alert": {**alert, "value": value}, "labels": alert["labels"],
               "annotations": alert["annotations"], "status": alert["status"], "value": value}

    def render(item: Any) -> Any:
        if isinstance(item, str):
            return ENV.from_string(item).render(context)
        if isinstance(item, dict):
            return {key: render(value) for key, value in item.items()}
        return item

    return [render(action) for action in rule["actions"]]


def test_every_rule_matches_an_alert_that_has_a_sample():
    for rule in rules():
        assert rule["match"]["alertname"] in alert_names(), rule["name"]
        for status in statuses(rule):
            assert (SAMPLES_DIR / f"{rule['match']['alertname']}.{status}.json").exists(), (rule["name"], status)


def test_rules_cover_the_remediations_of_the_issue():
    commands = {(rule["match"]["alertname"], action["command"]) for rule in rules() for action in rule["actions"]}
    assert commands == {
        ("CeleryQueueBacklog", "pool_target"),
        ("CeleryQueueNoConsumers", "add_consumer"),
        ("CeleryPoolOverprovisioned", "pool_shrink"),
        ("CeleryWorkerMemoryHigh", "pool_restart"),
        ("CeleryTaskFailureRatioHigh", "rate_limit"),
    }
    names = [rule["name"] for rule in rules()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule_name, status, expected", [
    # 750 waiting messages: the seed's max(2, min(10, 750 // 100)) = 7 processes.
    ("track-backlog", "firing", {"command": "pool_target", "workers": {"consuming": "celery"}, "size": "7",
                                 "min_pool": 2, "max_pool": 10}),
    ("settle-after-backlog", "resolved", {"command": "pool_target", "workers": {"consuming": "celery"},
                                          "size": 2, "min_pool": 2, "max_pool": 10}),
    ("adopt-orphaned-queue", "firing", {"command": "add_consumer", "workers": {"consuming": "celery"},
                                        "queue": "orphan"}),
    ("shrink-overprovisioned-pool", "firing", {"command": "pool_shrink", "workers": {"name": "celery@worker3"},
                                               "n": "4", "min_pool": 2}),
    ("restart-leaking-pool", "firing", {"command": "pool_restart", "workers": {"name": "celery@worker1"}}),
    ("throttle-failing-task", "firing", {"command": "rate_limit", "workers": "all", "task": "demo.fail",
                                         "rate_limit": "10/m"}),
])
def test_actions_render_for_the_sample_payloads(rule_name, status, expected):
    rule = next(rule for rule in rules() if rule["name"] == rule_name)
    assert status in statuses(rule)
    assert render_actions(rule, status) == [expected]
