"""demo/bundle_config.py: test-sized configs that are still the shipped ones."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from actuator.rule_file import load_rules
from demo.bundle_config import (
    ACTUATOR_RECEIVER, ACTUATOR_RULES_FILE, ALERT_RULES_FILE, EXPORTER_JOB, ON_CALL_RECEIVER, alert_names,
    alertmanager_config, load_yaml, prometheus_config, threshold_defaults, write_actuator_rules, write_rule_files,
)


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_threshold_defaults_are_read_from_the_thresholds_file():
    assert threshold_defaults() == {
        "queue_backlog_messages": 100, "pool_busy_ratio": 1, "worker_rss_growth_bytes": 256 * 1024 ** 2,
        "task_failure_ratio": 0.1, "task_failure_min_finished": 10, "events_silence_seconds": 60,
    }


def test_rule_files_take_thresholds_and_for_durations(tmp_path):
    thresholds_file, rules_file = write_rule_files(
        tmp_path, thresholds={"queue_backlog_messages": 5}, for_durations={"CeleryQueueBacklog": "2s"})
    records = {rule["record"]: rule["expr"] for group in load_yaml(thresholds_file)["groups"]
               for rule in group["rules"]}
    assert records["celery_autopilot:queue_backlog_messages:threshold"] == "vector(5.0)"
    assert records["celery_autopilot:pool_busy_ratio:threshold"] == "vector(1)"
    fors = {rule["alert"]: rule["for"] for group in load_yaml(rules_file)["groups"] for rule in group["rules"]}
    assert fors["CeleryQueueBacklog"] == "2s" and fors["CeleryWorkerDown"] == "5m"
    result = run("promtool", "check", "rules", str(thresholds_file), str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_keep_firing_for_changes_only_the_alerts_that_have_it(tmp_path):
    def keeps(path: Path) -> dict[str, str | None]:
        return {rule["alert"]: rule.get("keep_firing_for") for group in load_yaml(path)["groups"]
                for rule in group["rules"]}

    shipped = keeps(ALERT_RULES_FILE)
    assert shipped["CeleryQueueBacklog"] == "1m" and shipped["CeleryPoolSaturated"] is None
    assert keeps(write_rule_files(tmp_path, keep_firing_for="2s")[1]) == {
        name: keep and "2s" for name, keep in shipped.items()}
    assert keeps(write_rule_files(tmp_path, keep_firing_for=None)[1]) == shipped
    with pytest.raises(KeyError, match="unknown alert CeleryPoolSaturated"):
        write_rule_files(tmp_path, keep_firing_for={"CeleryPoolSaturated": "1s"})


def test_actuator_rules_take_cooldowns(tmp_path):
    path = write_actuator_rules(tmp_path, cooldowns={"track-backlog": "1s"})
    rules = {rule.name: rule for rule in load_rules(path).rules}
    shipped = {rule.name: rule for rule in load_rules(ACTUATOR_RULES_FILE).rules}
    assert rules["track-backlog"].policy.cooldown_seconds == 1
    assert list(rules) == list(shipped)
    for name, rule in rules.items():
        assert (rule.match, rule.on, [a.spec.name for a in rule.actions]) == (
            shipped[name].match, shipped[name].on, [a.spec.name for a in shipped[name].actions]), name
    with pytest.raises(KeyError, match="unknown actuator rule grow"):
        write_actuator_rules(tmp_path, cooldowns={"grow": "1s"})


def test_one_for_duration_applies_to_every_alert(tmp_path):
    _, rules_file = write_rule_files(tmp_path, for_durations="1s")
    fors = [rule["for"] for group in load_yaml(rules_file)["groups"] for rule in group["rules"]]
    assert fors == ["1s"] * len(alert_names())


@pytest.mark.parametrize("kwargs, culprit", [
    ({"thresholds": {"queue_backlog": 5}}, "unknown threshold queue_backlog"),
    ({"for_durations": {"CeleryQueueBacklogg": "1s"}}, "unknown alert CeleryQueueBacklogg"),
])
def test_unknown_names_are_refused_with_the_known_ones(tmp_path, kwargs, culprit):
    with pytest.raises(KeyError, match=culprit) as error:
        write_rule_files(tmp_path, **kwargs)
    assert "known:" in str(error.value)


def test_prometheus_config_points_jobs_at_the_given_targets(tmp_path):
    rule_files = write_rule_files(tmp_path)
    config = prometheus_config(rule_files=rule_files, targets={EXPORTER_JOB: ["127.0.0.1:1234"]},
                               alertmanagers=["127.0.0.1:4321"], instance_labels={"127.0.0.1:1234": "exporter:9808"})
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "1s"
    assert [job["job_name"] for job in config["scrape_configs"]] == [EXPORTER_JOB]
    assert config["scrape_configs"][0]["static_configs"] == [
        {"targets": ["127.0.0.1:1234"], "labels": {"instance": "exporter:9808"}}]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:4321"]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run("promtool", "check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    with pytest.raises(KeyError, match="unknown scrape job celery"):
        prometheus_config(rule_files=rule_files, targets={"celery": []})


def test_alertmanager_config_keeps_the_routing_and_shortens_the_waits(tmp_path):
    token = tmp_path / "token"
    token.write_text("secret\n")
    config = alertmanager_config(actuator_url="http://127.0.0.1:5555/webhook", credentials_file=token,
                                 on_call_url="http://127.0.0.1:6666/people")
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    webhook = receivers[ACTUATOR_RECEIVER]["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:5555/webhook"
    assert webhook["http_config"]["authorization"]["credentials_file"] == str(token)
    assert receivers[ON_CALL_RECEIVER]["webhook_configs"][0]["url"] == "http://127.0.0.1:6666/people"
    assert config["route"]["group_wait"] == config["route"]["routes"][0]["group_wait"] == "1s"
    assert config["route"]["routes"][0]["continue"] is True
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    result = run("amtool", "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    routed = run("amtool", "config", "routes", "test", f"--config.file={path}", "alertname=CeleryWorkerDown")
    assert routed.stdout.strip() == f"{ACTUATOR_RECEIVER},{ON_CALL_RECEIVER}"
