"""Demo- and test-sized configurations derived from the very files in alerts/.

The live demo and the end-to-end tests run the shipped rules, prometheus.yml, alertmanager.yml
and actuator-rules.yml, changing only what they must: targets and ports, thresholds, `for:` and
`keep_firing_for:` durations, intervals and cooldowns (seconds instead of minutes). Everything
else, routing included, is what users get.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTS_DIR = ROOT / "alerts"
THRESHOLDS_FILE = ALERTS_DIR / "thresholds.rules.yml"
ALERT_RULES_FILE = ALERTS_DIR / "celery.rules.yml"
PROMETHEUS_FILE = ALERTS_DIR / "prometheus.yml"
ALERTMANAGER_FILE = ALERTS_DIR / "alertmanager.yml"
ACTUATOR_RULES_FILE = ALERTS_DIR / "actuator-rules.yml"

EXPORTER_JOB = "celery-exporter"
ACTUATOR_JOB = "celery-autopilot-actuator"
ACTUATOR_RECEIVER = "celery-autopilot-actuator"
ON_CALL_RECEIVER = "on-call"

_THRESHOLD_PREFIX = "celery_autopilot:"
_THRESHOLD_SUFFIX = ":threshold"


def load_yaml(path: Path) -> Any:
    with path.open() as f:
        return yaml.safe_load(f)


def _rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def threshold_defaults() -> dict[str, float]:
    """Each threshold of thresholds.rules.yml by short name (``queue_backlog_messages``)."""
    defaults = {}
    for rule in _rules(THRESHOLDS_FILE):
        name = rule["record"].removeprefix(_THRESHOLD_PREFIX).removesuffix(_THRESHOLD_SUFFIX)
        expr = rule["expr"].strip()
        if not (expr.startswith("vector(") and expr.endswith(")")):
            raise ValueError(f"{THRESHOLDS_FILE}: {rule['record']} is {expr!r}, expected vector(<number>)")
        defaults[name] = float(expr[len("vector("):-1])
    return defaults


def threshold_records() -> set[str]:
    """The recorded threshold series' names (``celery_autopilot:<name>:threshold``)."""
    return {rule["record"] for rule in _rules(THRESHOLDS_FILE)}


def alert_names() -> list[str]:
    return [rule["alert"] for rule in _rules(ALERT_RULES_FILE) if "alert" in rule]


def _unknown(kind: str, asked: Sequence[str], known: Sequence[str]) -> None:
    unknown = sorted(set(asked) - set(known))
    if unknown:
        raise KeyError(f"unknown {kind} {', '.join(unknown)}; known: {', '.join(known)}")


def _per_alert(durations: str | Mapping[str, str] | None, alerts: Sequence[str]) -> dict[str, str]:
    """A duration for every alert in ``alerts`` (a string), for the named ones (a mapping), or none."""
    if isinstance(durations, str):
        return {name: durations for name in alerts}
    durations = dict(durations or {})
    _unknown("alert", list(durations), alerts)
    return durations


def write_rule_files(
    dest: Path,
    *,
    thresholds: Mapping[str, float] | None = None,
    for_durations: str | Mapping[str, str] | None = "1s",
    keep_firing_for: str | Mapping[str, str] | None = "2s",
) -> list[Path]:
    """Write thresholds and alert rules into ``dest`` and return the two paths.

    ``thresholds`` overrides thresholds by short name; ``for_durations`` sets the ``for:`` of
    every alert (a string), of the named alerts (a mapping) or of none (``None``);
    ``keep_firing_for`` likewise the ``keep_firing_for:`` of the alerts that have one.
    """
    thresholds = dict(thresholds or {})
    _unknown("threshold", list(thresholds), list(threshold_defaults()))
    threshold_doc = load_yaml(THRESHOLDS_FILE)
    for group in threshold_doc["groups"]:
        for rule in group["rules"]:
            name = rule["record"].removeprefix(_THRESHOLD_PREFIX).removesuffix(_THRESHOLD_SUFFIX)
            if name in thresholds:
                rule["expr"] = f"vector({float(thresholds[name])!r})"

    alert_doc = load_yaml(ALERT_RULES_FILE)
    alerts = [rule for group in alert_doc["groups"] for rule in group["rules"] if "alert" in rule]
    keeping = [rule["alert"] for rule in alerts if "keep_firing_for" in rule]
    fors = _per_alert(for_durations, alert_names())
    keeps = _per_alert(keep_firing_for, keeping)
    for rule in alerts:
        if rule["alert"] in fors:
            rule["for"] = fors[rule["alert"]]
        if rule["alert"] in keeps:
            rule["keep_firing_for"] = keeps[rule["alert"]]

    dest.mkdir(parents=True, exist_ok=True)
    paths = [dest / THRESHOLDS_FILE.name, dest / ALERT_RULES_FILE.name]
    for path, doc in zip(paths, (threshold_doc, alert_doc)):
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return paths


def write_actuator_rules(dest: Path, *, cooldowns: Mapping[str, str]) -> Path:
    """alerts/actuator-rules.yml into ``dest`` with the named rules' ``cooldown`` changed."""
    doc = load_yaml(ACTUATOR_RULES_FILE)
    for rule in doc["rules"]:
        if True in rule:  # PyYAML reads the key `on:` as a YAML 1.1 boolean; the actuator does not
            rule["on"] = rule.pop(True)
    rules = {rule["name"]: rule for rule in doc["rules"]}
    _unknown("actuator rule", list(cooldowns), list(rules))
    for name, cooldown in cooldowns.items():
        rules[name]["cooldown"] = cooldown
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / ACTUATOR_RULES_FILE.name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def prometheus_config(
    *,
    rule_files: Sequence[Path],
    targets: Mapping[str, Sequence[str]],
    alertmanagers: Sequence[str] = (),
    instance_labels: Mapping[str, str] | None = None,
    interval: str = "1s",
) -> dict[str, Any]:
    """alerts/prometheus.yml with its scrape jobs pointed at ``targets`` (job name → host:port).

    A job left out of ``targets`` is dropped. ``instance_labels`` names a target's ``instance``
    (host:port → label) so that alerts carry a stable name instead of a random port.
    """
    config = load_yaml(PROMETHEUS_FILE)
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    _unknown("scrape job", list(targets), jobs)
    instance_labels = instance_labels or {}
    config["global"] = {**config.get("global", {}), "scrape_interval": interval,
                        "evaluation_interval": interval, "scrape_timeout": interval}
    config["rule_files"] = [str(path) for path in rule_files]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    scrape_configs = []
    for job in config["scrape_configs"]:
        if job["job_name"] not in targets:
            continue
        job["static_configs"] = [
            {"targets": [address], **({"labels": {"instance": instance_labels[address]}}
                                      if address in instance_labels else {})}
            for address in targets[job["job_name"]]
        ]
        scrape_configs.append(job)
    config["scrape_configs"] = scrape_configs
    return config


def alertmanager_config(
    *,
    actuator_url: str,
    credentials_file: Path,
    on_call_url: str | None = None,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """alerts/alertmanager.yml with the actuator at ``actuator_url`` and every wait shortened.

    ``on_call_url``, when given, makes the human receiver a webhook too, so a test can see what
    people would be sent.
    """
    config = load_yaml(ALERTMANAGER_FILE)
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    webhook = receivers[ACTUATOR_RECEIVER]["webhook_configs"][0]
    webhook["url"] = actuator_url
    webhook["http_config"]["authorization"]["credentials_file"] = str(credentials_file)
    if on_call_url is not None:
        receivers[ON_CALL_RECEIVER]["webhook_configs"] = [{"url": on_call_url, "send_resolved": True}]

    def shorten(route: dict[str, Any]) -> None:
        for key, value in (("group_wait", group_wait), ("group_interval", group_interval),
                           ("repeat_interval", repeat_interval)):
            if key in route:
                route[key] = value
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    return config
