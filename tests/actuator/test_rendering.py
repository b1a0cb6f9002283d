"""Rendering actions from alerts: the sandbox, strict undefined names, labels as data."""
from __future__ import annotations

import pytest

from actuator.actions import ActionError, render_action
from actuator.payload import Alert
from actuator.rule_file import parse_rules


def rule_with(action: str, match: str = "{alertname: A}"):
    rules = parse_rules(f"rules:\n- name: r\n  match: {match}\n  actions:\n  - {action}\n")
    return rules.rules[0]


def make_alert(labels: dict[str, str], annotations: dict[str, str] | None = None) -> Alert:
    return Alert(status="firing", labels={"alertname": "A", **labels}, annotations=annotations or {},
                 starts_at="2026-01-01T00:00:00Z", ends_at="", generator_url="http://p", fingerprint="abc")


def render(action: str, labels: dict[str, str], annotations: dict[str, str] | None = None):
    rule = rule_with(action)
    return render_action(rule.actions[0], rule, make_alert(labels, annotations))


DESIGN_GROW = ('{command: pool_grow, workers: {consuming: "{{ labels.queue_name }}"}, '
               'n: "{{ [ (alert.value | float / 100) | round(0, \'ceil\') | int, 4 ] | min }}"}')


@pytest.mark.parametrize(("value", "n"), [("250", 3), ("100", 1), ("1000", 4), ("1.5", 1)])
def test_the_design_example_sizes_the_growth_from_the_value(value, n):
    action = render(DESIGN_GROW, {"queue_name": "celery"}, {"value": value})
    assert action.arguments == {"n": n}
    assert action.target.describe() == {"consuming": "celery"} and action.rule == "r"


def test_label_values_are_data_never_templates():
    action = render('{command: add_consumer, workers: {name: "{{ labels.worker }}"}, queue: "{{ labels.q }}"}',
                    {"worker": "celery@{{7*7}}", "q": "{{7*7}}{%raw%}"})
    assert action.arguments["queue"] == "{{7*7}}{%raw%}"
    assert action.target.value == "celery@{{7*7}}"


def test_the_context_offers_alert_fields_status_and_annotations():
    action = render('{command: add_consumer, workers: all, '
                    'queue: "{{ status }}-{{ alert.fingerprint }}-{{ annotations.team }}-{{ alert.startsAt[:4] }}"}',
                    {}, {"team": "ops"})
    assert action.arguments["queue"] == "firing-abc-ops-2026"


@pytest.mark.parametrize(("action", "labels", "annotations", "field", "fragment"), [
    ('{command: pool_grow, workers: {consuming: "{{ labels.queue_name }}"}}', {}, {},
     "workers.consuming", "'dict object' has no attribute 'queue_name'"),
    ('{command: pool_grow, workers: all, n: "{{ value }}"}', {}, {}, "n", "'value' is undefined"),
    ('{command: pool_grow, workers: all, n: "{{ value }}"}', {}, {"value": "NaN"}, "n", "'value' is undefined"),
    ('{command: pool_grow, workers: all, n: "{{ value // 100 }}"}', {}, {"value": "20"}, "n",
     "got '0.0'; expected an integer from 1 to 1000"),
    ('{command: pool_grow, workers: all, n: "{{ labels.__class__.__mro__ }}"}', {}, {}, "n", "SecurityError"),
    ('{command: rate_limit, workers: all, task: "{{ labels.task }}", rate_limit: "{{ labels.rate }}"}',
     {"task": "demo.sleep", "rate": "200/minute"}, {}, "rate_limit", "got '200/minute'"),
    ('{command: add_consumer, workers: all, queue: "{{ labels.q }}"}', {"q": "two words"}, {}, "queue",
     "without whitespace"),
    ('{command: add_consumer, workers: {name: "{{ labels.w }}"}, queue: q}', {"w": ""}, {}, "workers.name",
     "non-empty name"),
    ('{command: autoscale, workers: all, max: "{{ labels.m }}", min: 4}', {"m": "3"}, {}, "min",
     "at most max (3)"),
])
def test_render_and_validation_errors_name_the_field(action, labels, annotations, field, fragment):
    with pytest.raises(ActionError) as failure:
        render(action, labels, annotations)
    assert failure.value.field == field and fragment in failure.value.message
