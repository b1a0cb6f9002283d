"""alerts/actuator-rules.yml through the real ``autopilot-actuator check``, on every sample.

alerts/samples/ holds what Alertmanager really posts for each alert (tests/bundle/
test_alert_flow.py keeps them current), so this is what the actuator will decide in production,
minus the live workers: every sample must pass the check and render the expected commands.
actuator/rules.example.yml, the example shipped inside the package, is this very file.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import actuator
from actuator.rule_file import load_rules
from demo.bundle_config import ALERTS_DIR, ROOT, alert_names

RULES_FILE = ALERTS_DIR / "actuator-rules.yml"
SAMPLES_DIR = ALERTS_DIR / "samples"
CHECK = [shutil.which("autopilot-actuator", path=str(Path(sys.executable).parent)) or "autopilot-actuator",
         "check", "--rules", str(RULES_FILE)]

# What `check` prints for each sample: the story of tests/support/synthetic_metrics.py.
EXPECTED = {
    # 750 waiting messages for 1 consumer: the seed's max(2, min(10, 750 // 100)) = 7 processes,
    # grow only.
    "CeleryQueueBacklog.firing":
        "rule track-backlog: pool_target size=7 max_pool=10 min_pool=2 direction=up -> workers consuming 'celery'",
    # Nothing shrinks on resolve: shrink-overprovisioned-pool does, on evidence.
    "CeleryQueueBacklog.resolved": "no rule matched",
    "CeleryQueueNoConsumers.firing":
        "rule adopt-orphaned-queue: add_consumer queue='orphan' -> workers consuming 'celery'",
    "CeleryPoolOverprovisioned.firing":
        "rule shrink-overprovisioned-pool: pool_shrink n=4 min_pool=1 -> worker 'celery@worker3'",
    "CeleryWorkerMemoryHigh.firing": "rule restart-leaking-pool: pool_restart  -> worker 'celery@worker1'",
    "CeleryTaskFailureRatioHigh.firing":
        "rule throttle-failing-task: rate_limit task='demo.fail' rate_limit='10/m' -> all workers",
    "CeleryWorkerDown.firing": "no rule matched",
    "CeleryPoolSaturated.firing": "no rule matched",
    "CeleryExporterDown.firing": "no rule matched",
    "CeleryEventsStalled.firing": "no rule matched",
    "CeleryWorkersWithoutTaskEvents.firing": "no rule matched",
}


def test_every_sample_has_an_expectation():
    assert {path.stem for path in SAMPLES_DIR.glob("*.json")} == set(EXPECTED)
    assert {key.split(".")[0] for key in EXPECTED} == set(alert_names())


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_check_passes_and_prints_the_commands(sample):
    result = subprocess.run([*CHECK, str(SAMPLES_DIR / f"{sample}.json")], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    alertname, status = sample.split(".")
    assert f"alert {alertname} [{status}]" in result.stdout
    assert f"  {EXPECTED[sample]}\n" in result.stdout, result.stdout
    assert result.stdout.endswith("\n0 error(s)\n") and "\nwarning: " not in result.stdout


@pytest.mark.parametrize("value, consumers, size", [
    ("750", "1", 7), ("750", "2", 3), ("750", "0", 7), ("750", None, 7), ("4000", "1", 10), ("120", "1", 2),
])
def test_track_backlog_shares_the_backlog_among_the_consuming_workers(tmp_path, value, consumers, size):
    """Every consuming worker gets the target, so it is the backlog per worker that counts; an
    alert without the annotation (or 0 consumers) counts as one. min_pool and max_pool clamp."""
    payload = json.loads((SAMPLES_DIR / "CeleryQueueBacklog.firing.json").read_text())
    annotations = payload["alerts"][0]["annotations"]
    annotations["value"] = value
    annotations.pop("consumers")
    if consumers is not None:
        annotations["consumers"] = consumers
    path = tmp_path / "backlog.json"
    path.write_text(json.dumps(payload))
    result = subprocess.run([*CHECK, str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = int(re.search(r"pool_target size=(\d+) ", result.stdout).group(1))
    assert min(max(rendered, 2), 10) == size, result.stdout


def test_rules_cover_the_remediations_of_the_issue():
    rules = load_rules(RULES_FILE)
    commands = {(rule.match["alertname"], action.spec.name) for rule in rules.rules for action in rule.actions}
    assert commands == {
        ("CeleryQueueBacklog", "pool_target"),
        ("CeleryQueueNoConsumers", "add_consumer"),
        ("CeleryPoolOverprovisioned", "pool_shrink"),
        ("CeleryWorkerMemoryHigh", "pool_restart"),
        ("CeleryTaskFailureRatioHigh", "rate_limit"),
    }


def test_the_package_ships_this_very_file_as_its_example():
    example = Path(actuator.__file__).parent / "rules.example.yml"
    assert example.read_bytes() == RULES_FILE.read_bytes(), (
        "actuator/rules.example.yml differs from alerts/actuator-rules.yml: cp alerts/actuator-rules.yml "
        "actuator/rules.example.yml")
