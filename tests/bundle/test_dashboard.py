"""grafana/: the dashboard is importable, provisionable, and every PromQL in it parses.

Whether every query returns data against a real exporter and actuator is
tests/e2e/test_dashboard_data.py; here each expression goes through promtool's parser with
Grafana's variables substituted, and every metric it reads must be one the exporter, the
actuator, Prometheus or the threshold rules produce.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from demo.bundle_config import load_yaml, threshold_records
from tests.bundle.metric_contract import (
    ACTUATOR_METRICS, EXPORTER_METRICS, PROMETHEUS_METRICS, metric_names,
)
from tests.support.dashboard import GRAFANA_DIR, expressions, graph_panels, load_dashboard, substitute

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return load_dashboard()


def test_importable_with_a_datasource_input(dashboard):
    (source,) = dashboard["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == ("DS_PROMETHEUS", "datasource", "prometheus")
    assert dashboard["uid"] == "celery-autopilot" and dashboard["id"] is None


def test_provisionable_through_a_datasource_variable_of_the_same_name(dashboard):
    """Provisioning does not resolve __inputs: a datasource variable named DS_PROMETHEUS does."""
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for panel in graph_panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"]), panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_panels_have_unique_ids_and_do_not_overlap(dashboard):
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]
    for panel in graph_panels(dashboard):
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_every_expression_parses(dashboard, tmp_path: Path):
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    rules = [{"record": f"dashboard:expression_{i}:check", "expr": substitute(expr, variables)}
             for i, (_, expr) in enumerate(expressions(dashboard))]
    rule_file = tmp_path / "dashboard.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(rule_file)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_every_expression_reads_known_metrics(dashboard):
    known = EXPORTER_METRICS | ACTUATOR_METRICS | PROMETHEUS_METRICS | threshold_records()
    for where, expr in expressions(dashboard):
        unknown = metric_names(expr, EXPORTER_METRICS) - known
        assert not unknown, f"{where} reads unknown metrics {unknown}"


def test_shows_what_the_issue_asks_for(dashboard):
    used = set()
    for _, expr in expressions(dashboard):
        used |= metric_names(expr, EXPORTER_METRICS)
    throughput = next(p for p in graph_panels(dashboard) if p["title"] == "Task throughput by state")
    assert {t["legendFormat"] for t in throughput["targets"]} == {
        "sent", "received", "started", "succeeded", "failed", "retried", "rejected", "revoked"}
    assert {
        "celery_task_failed_total", "celery_task_succeeded_total",
        "celery_task_runtime_bucket", "celery_task_queue_wait_time_bucket",
        "celery_queue_length", "celery_worker_up", "celery_worker_pool_processes",
        "celery_actuator_actions_total",
    } <= used
    annotations = {a["name"]: a for a in dashboard["annotations"]["list"]}
    assert "celery_actuator_actions_total" in annotations["Actuator actions"]["expr"]
    assert any("celery_actuator_actions_total" in t["expr"] for p in graph_panels(dashboard) for t in p["targets"]
               if p["type"] == "timeseries")


def test_rates_use_the_rate_interval_never_the_bare_interval(dashboard):
    """$__interval can be shorter than two scrapes: increase() over it sees one sample or none,
    and an action (or a rate) between two such windows is never drawn. $__rate_interval is at
    least four scrape intervals."""
    for where, expr in expressions(dashboard):
        assert "$__interval" not in expr, f"{where}: {expr}"


def test_provisioning_points_grafana_at_prometheus_and_the_dashboards():
    (datasource,) = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert (datasource["type"], datasource["url"], datasource["isDefault"]) == (
        "prometheus", "http://prometheus:9090", True)
    (provider,) = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "celery-autopilot.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
