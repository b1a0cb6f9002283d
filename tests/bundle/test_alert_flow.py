"""The shipped rules and routing on real Prometheus and Alertmanager, end to end.

A synthetic /metrics target in which every alert holds stands in for the exporter (the real
exporter's turn comes in tests/e2e/test_alerts_on_real_data.py); a tiny aiohttp receiver stands
in for the actuator and records exactly what Alertmanager posts. The committed alerts/samples/ must match
what arrives, so the actuator team's fixtures never drift from the rules.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from demo.bundle_config import ACTUATOR_RECEIVER, ALERTS_DIR, alert_names
from tests.support.sample_capture import (
    DEMO_TOKEN, RESOLVED_ALERT, SyntheticFlow, capture_every_alert, synthetic_flow,
)
from tests.support.webhook_receiver import Notification

SAMPLES_DIR = ALERTS_DIR / "samples"
# What differs from run to run: times, and values that depend on how long the run took.
VOLATILE_ALERT_FIELDS = {"startsAt", "endsAt"}
TIME_DEPENDENT = {"CeleryEventsStalled", "CeleryTaskFailureRatioHigh", "CeleryWorkerMemoryHigh"}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def flow(tmp_path_factory) -> Iterator[SyntheticFlow]:
    with synthetic_flow(tmp_path_factory.mktemp("alert-flow")) as running:
        yield running


@pytest.fixture(scope="module")
def captured(flow) -> dict[str, Notification]:
    return capture_every_alert(flow)


def test_every_alert_reaches_the_actuator_receiver_alone_with_credentials(captured):
    for name in alert_names():
        notification = captured[f"{name}.firing"]
        body = notification.body
        assert notification.headers["Authorization"] == f"Bearer {DEMO_TOKEN}"
        assert notification.headers["User-Agent"].startswith("Alertmanager/")
        assert body["version"] == "4" and body["receiver"] == ACTUATOR_RECEIVER
        assert notification.alertnames == [name], "group_by '...' sends each alert on its own"
        (alert,) = body["alerts"]
        float(alert["annotations"]["value"])
        assert alert["fingerprint"] and alert["generatorURL"].startswith("http://prometheus:9090/graph")


def test_alerts_carry_the_values_of_the_story(captured):
    def alert(name: str) -> dict:
        return captured[f"{name}.firing"].body["alerts"][0]

    assert alert("CeleryQueueBacklog")["labels"]["queue_name"] == "celery"
    assert alert("CeleryQueueBacklog")["annotations"]["value"] == "750"
    assert alert("CeleryQueueBacklog")["annotations"]["consumers"] == "1"
    assert alert("CeleryQueueNoConsumers")["labels"]["queue_name"] == "orphan"
    assert alert("CeleryWorkerDown")["labels"]["hostname"] == "celery@worker2"
    assert alert("CeleryPoolSaturated")["labels"]["hostname"] == "celery@worker1"
    assert alert("CeleryWorkerMemoryHigh")["labels"]["hostname"] == "celery@worker1"
    assert float(alert("CeleryWorkerMemoryHigh")["annotations"]["value"]) > 256 * 1024 ** 2
    assert alert("CeleryPoolOverprovisioned")["labels"]["hostname"] == "celery@worker3"
    assert alert("CeleryPoolOverprovisioned")["annotations"]["value"] == "4"
    assert alert("CeleryTaskFailureRatioHigh")["labels"]["name"] == "demo.fail"
    assert float(alert("CeleryTaskFailureRatioHigh")["annotations"]["value"]) == pytest.approx(0.75, abs=0.01)
    assert alert("CeleryExporterDown")["labels"]["instance"] == "exporter-standby:9808"
    assert float(alert("CeleryEventsStalled")["annotations"]["value"]) >= 600
    assert alert("CeleryWorkersWithoutTaskEvents")["annotations"]["value"] == "1"


def test_a_drained_backlog_sends_resolved(captured):
    body = captured[f"{RESOLVED_ALERT}.resolved"].body
    (alert,) = body["alerts"]
    assert body["status"] == alert["status"] == "resolved"
    assert alert["endsAt"] > alert["startsAt"]
    assert alert["fingerprint"] == captured[f"{RESOLVED_ALERT}.firing"].body["alerts"][0]["fingerprint"]


def _stable(body: dict, time_dependent: bool) -> dict:
    """The payload without what changes from run to run."""
    body = json.loads(json.dumps(body))
    for alert in body["alerts"]:
        for field in VOLATILE_ALERT_FIELDS:
            alert.pop(field)
        if time_dependent:
            alert.pop("annotations")
    if time_dependent:
        body.pop("commonAnnotations")
    return body


def test_committed_samples_are_what_alertmanager_sends(captured):
    committed = {path.stem: json.loads(path.read_text()) for path in SAMPLES_DIR.glob("*.json")}
    assert set(committed) == set(captured), "run scripts/capture_webhook_samples.py"
    for key, notification in captured.items():
        time_dependent = key.split(".")[0] in TIME_DEPENDENT
        assert list(committed[key]) == list(notification.body), f"{key}: keys or their order differ"
        assert _stable(committed[key], time_dependent) == _stable(notification.body, time_dependent), (
            f"alerts/samples/{key}.json is stale: run scripts/capture_webhook_samples.py")


def test_prometheus_helpers_see_the_loaded_rules_targets_and_alerts(flow, captured):
    prometheus = flow.stack.prometheus
    groups = {group["name"]: len(group["rules"]) for group in prometheus.rule_groups()}
    assert groups == {"celery-autopilot-thresholds": 6, "celery-autopilot": 10}
    health = {target["labels"]["instance"]: target["health"] for target in prometheus.targets()}
    assert health == {"exporter:9808": "up", "exporter-standby:9808": "down"}
    (orphan,) = prometheus.query('celery_queue_length{queue_name="orphan"}')
    assert orphan["value"][1] == "12"
    (down,) = prometheus.wait_for_alert("CeleryWorkerDown")
    assert down["labels"]["hostname"] == "celery@worker2"


def test_alertmanager_helpers_hold_and_accept_alerts(flow, captured):
    alertmanager = flow.stack.alertmanager
    held = {alert["labels"]["alertname"] for alert in alertmanager.alerts()}
    assert "CeleryQueueNoConsumers" in held
    alertmanager.post_alerts([{"labels": {"alertname": "CeleryInjected", "queue_name": "manual"},
                               "annotations": {"value": "1"}}])
    injected = flow.receiver.wait_for(lambda n: n.alertnames == ["CeleryInjected"],
                                      what="the injected alert at the receiver")
    assert injected.body["alerts"][0]["labels"]["queue_name"] == "manual"
