"""alerts/: the rule files, their promtool unit tests, prometheus.yml and alertmanager.yml."""
from __future__ import annotations

import re
import subprocess

import pytest

from tests.bundle.metric_contract import EXPORTER_METRICS, PROMETHEUS_METRICS, metric_names
from demo.bundle_config import (
    ACTUATOR_RECEIVER, ALERTMANAGER_FILE, ALERT_RULES_FILE, ALERTS_DIR, EXPORTER_JOB, ON_CALL_RECEIVER,
    PROMETHEUS_FILE, THRESHOLDS_FILE, load_yaml, threshold_records,
)

ALERT_NAMES = [
    "CeleryQueueBacklog", "CeleryQueueNoConsumers", "CeleryWorkerDown", "CeleryPoolSaturated",
    "CeleryWorkerMemoryHigh", "CeleryTaskFailureRatioHigh", "CeleryPoolOverprovisioned",
    "CeleryExporterDown", "CeleryEventsStalled", "CeleryWorkersWithoutTaskEvents",
]
# The label that names what each alert is about, which actuator rules template into targets.
SUBJECT_LABEL = {
    "CeleryQueueBacklog": "queue_name", "CeleryQueueNoConsumers": "queue_name",
    "CeleryWorkerDown": "hostname", "CeleryPoolSaturated": "hostname",
    "CeleryWorkerMemoryHigh": "hostname", "CeleryPoolOverprovisioned": "hostname",
    "CeleryTaskFailureRatioHigh": "name", "CeleryExporterDown": "job",
    "CeleryEventsStalled": "instance", "CeleryWorkersWithoutTaskEvents": "instance",
}
REMEDIATION_ALERTS = ["CeleryQueueBacklog", "CeleryQueueNoConsumers", "CeleryPoolOverprovisioned"]
TEST_FILE = ALERTS_DIR / "celery.rules.test.yml"
ACTUATOR_RULES_FILE = ALERTS_DIR / "actuator-rules.yml"
_DURATION = re.compile(r"(\d+)([smh])")


def duration_seconds(text: str) -> int:
    return sum(int(number) * {"s": 1, "m": 60, "h": 3600}[unit] for number, unit in _DURATION.findall(text))


def track_backlog_cooldown() -> str:
    return next(rule["cooldown"] for rule in load_yaml(ACTUATOR_RULES_FILE)["rules"] if rule["name"] == "track-backlog")


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def alert_rules() -> dict[str, dict]:
    return {rule["alert"]: rule for group in load_yaml(ALERT_RULES_FILE)["groups"]
            for rule in group["rules"] if "alert" in rule}


def test_promtool_check_rules_is_clean():
    result = run("promtool", "check", "rules", str(THRESHOLDS_FILE), str(ALERT_RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_promtool_unit_tests_pass():
    result = run("promtool", "test", "rules", str(TEST_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_can_fail(tmp_path):
    """A backlog threshold of 1000 must break the backlog test: the tests really check values."""
    (tmp_path / THRESHOLDS_FILE.name).write_text(
        THRESHOLDS_FILE.read_text().replace("expr: vector(100)", "expr: vector(1000)"))
    (tmp_path / ALERT_RULES_FILE.name).write_text(ALERT_RULES_FILE.read_text())
    (tmp_path / TEST_FILE.name).write_text(TEST_FILE.read_text())
    result = run("promtool", "test", "rules", str(tmp_path / TEST_FILE.name))
    assert result.returncode != 0
    assert "CeleryQueueBacklog" in result.stdout + result.stderr


def test_every_alert_exists_with_its_annotations():
    rules = alert_rules()
    assert list(rules) == ALERT_NAMES
    for name, rule in rules.items():
        annotations = rule["annotations"]
        assert annotations["value"] == "{{ $value }}", name
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name
        assert "for" in rule, f"{name} fires on a single evaluation"


def test_every_alert_keeps_the_label_its_actuator_rules_target():
    """Every firing case promtool checks expects the subject label, so the expressions keep it."""
    expected: dict[str, list[dict]] = {}
    for group in load_yaml(TEST_FILE)["tests"]:
        for case in group["alert_rule_test"]:
            for alert in case.get("exp_alerts") or []:
                expected.setdefault(case["alertname"], []).append(alert["exp_labels"])
    for name in ALERT_NAMES:
        assert expected[name], f"no firing case for {name}"
        for labels in expected[name]:
            assert labels.get(SUBJECT_LABEL[name]), (name, labels)


def test_alerts_that_a_failed_scrape_must_not_resolve_keep_firing_for_a_minute():
    """One failed scrape leaves no sample: the alert would resolve and fire again as a new one."""
    keeping = {name: rule.get("keep_firing_for") for name, rule in alert_rules().items()}
    assert {name for name, keep in keeping.items() if keep} == {
        "CeleryQueueBacklog", "CeleryQueueNoConsumers", "CeleryWorkerDown"}
    assert {keep for keep in keeping.values() if keep} == {"1m"}


def test_remediation_alerts_wait_with_for_not_with_range_windows():
    for name in REMEDIATION_ALERTS:
        rule = alert_rules()[name]
        assert "[" not in rule["expr"], f"{name} uses a range window: {rule['expr']}"
        assert rule["for"]


def test_alerts_read_only_known_metrics_and_defined_thresholds():
    """In their expressions and in the queries their annotations run."""
    defined = threshold_records()
    used_thresholds: set[str] = set()
    for name, rule in alert_rules().items():
        names = metric_names(" ".join([rule["expr"], *rule["annotations"].values()]), EXPORTER_METRICS)
        used_thresholds |= {n for n in names if n.endswith(":threshold")}
        unknown = names - EXPORTER_METRICS - PROMETHEUS_METRICS - defined
        assert not unknown, f"{name} reads unknown metrics {unknown}"
    assert used_thresholds == defined, "every threshold is used and every used one is defined"


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    cases: dict[str, set[bool]] = {}
    for group in load_yaml(TEST_FILE)["tests"]:
        for case in group["alert_rule_test"]:
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    assert {name: cases.get(name) for name in ALERT_NAMES} == {name: {True, False} for name in ALERT_NAMES}


def test_prometheus_config_is_valid_and_loads_both_rule_files():
    result = run("promtool", "check", "config", str(PROMETHEUS_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    config = load_yaml(PROMETHEUS_FILE)
    assert config["rule_files"] == [THRESHOLDS_FILE.name, ALERT_RULES_FILE.name]
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert jobs[EXPORTER_JOB] == ["exporter:9808"]
    assert jobs["celery-autopilot-actuator"] == ["actuator:9809"]
    assert 'up{job="celery-exporter"}' in alert_rules()["CeleryExporterDown"]["expr"]


def test_alertmanager_config_is_valid():
    result = run("amtool", "check-config", str(ALERTMANAGER_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


# Who hears of a Celery alert besides the actuator: the on-call pager for critical ones, the
# team's chat for warnings, nobody for info (the actuator handles those on its own).
PEOPLE_FOR = {"critical": ON_CALL_RECEIVER, "warning": "team-chat", "info": "nobody"}


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_celery_alerts_reach_the_actuator_and_then_people_by_severity(alertname):
    severity = alert_rules()[alertname]["labels"]["severity"]
    result = run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_FILE}",
                 f"alertname={alertname}", f"severity={severity}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{ACTUATOR_RECEIVER},{PEOPLE_FOR[severity]}"


def test_every_human_receiver_exists():
    receivers = {receiver["name"] for receiver in load_yaml(ALERTMANAGER_FILE)["receivers"]}
    assert set(PEOPLE_FOR.values()) | {ACTUATOR_RECEIVER} == receivers


def test_other_alerts_reach_only_people():
    for severity in PEOPLE_FOR:
        result = run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_FILE}",
                     "alertname=NodeDown", f"severity={severity}")
        assert result.stdout.strip() == ON_CALL_RECEIVER, severity


def test_actuator_receiver_sends_resolved_with_credentials_quickly():
    config = load_yaml(ALERTMANAGER_FILE)
    receiver = next(r for r in config["receivers"] if r["name"] == ACTUATOR_RECEIVER)
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"] == "http://actuator:9809/webhook"
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["type"] == "Bearer"
    assert webhook["http_config"]["authorization"]["credentials_file"]
    route = next(r for r in config["route"]["routes"] if r["receiver"] == ACTUATOR_RECEIVER)
    assert route["continue"] is True
    assert route["group_by"] == ["..."], "one notification per alert, so each acts on its own"
    assert route["group_wait"] == "5s"
    # Re-sends carry the current value, which target tracking follows: often enough to matter,
    # never more often than track-backlog's cooldown lets it act.
    assert (duration_seconds(route["group_interval"]), duration_seconds(route["repeat_interval"])) == (60, 120)
    assert duration_seconds(track_backlog_cooldown()) < duration_seconds(route["repeat_interval"])
