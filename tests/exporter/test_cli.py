"""Flags, environment variables, their errors, and the three ways to start the exporter."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.cli import OPTIONS, UsageError, parse_settings
from tests.support.exporter import start_exporter

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})})


def test_flags_win_over_environment_and_environment_over_defaults():
    settings = parse_settings(
        ["--broker-url", "redis://flag/0", "--queues", "a, b", "--heartbeat-timeout", "7.5"],
        {"AUTOPILOT_EXPORTER_BROKER_URL": "redis://env/0", "AUTOPILOT_EXPORTER_PORT": "9999",
         "AUTOPILOT_EXPORTER_ENABLE_EVENTS": "true", "AUTOPILOT_EXPORTER_TASK_DENY": "x.*,y"})
    assert settings.broker_url == "redis://flag/0"
    assert settings.port == 9999
    assert settings.queues == ("a", "b")
    assert settings.heartbeat_timeout == 7.5
    assert settings.enable_events is True
    assert settings.task_deny == ("x.*", "y")
    assert settings.inspect_interval == 5.0 and settings.purge_after == 1800.0


@pytest.mark.parametrize("argv, environ, expected", [
    ([], {}, (True, False)),
    (["--enable-events"], {}, (True, True)),
    (["--enable-events", "no", "--generic-hostname-task-sent-metric", "false"], {}, (False, False)),
    ([], {"AUTOPILOT_EXPORTER_GENERIC_HOSTNAME_TASK_SENT_METRIC": "false"}, (False, False)),
    (["--generic-hostname-task-sent-metric"], {"AUTOPILOT_EXPORTER_GENERIC_HOSTNAME_TASK_SENT_METRIC": "0"},
     (True, False)),
])
def test_boolean_flags_alone_mean_true_and_take_a_value(argv, environ, expected):
    settings = parse_settings(["--broker-url", "redis://h/0", *argv], environ)
    assert (settings.generic_hostname_task_sent_metric, settings.enable_events) == expected


def test_defaults_match_the_documented_ones():
    settings = parse_settings(["--broker-url", "redis://h/0"], {})
    assert (settings.host, settings.port, settings.queues) == ("0.0.0.0", 9808, ("celery",))
    assert settings.heartbeat_timeout is None  # auto
    assert settings.runtime_buckets[0] == 0.005 and settings.runtime_buckets[-1] == 10.0


@pytest.mark.parametrize("argv, environ, culprit", [
    (["--port", "70000"], {}, "--port"),
    (["--inspect-timeout", "-1"], {}, "--inspect-timeout"),
    (["--runtime-buckets", "1,0.5"], {}, "--runtime-buckets"),
    (["--log-level", "chatty"], {}, "--log-level"),
    ([], {"AUTOPILOT_EXPORTER_MAX_SERIES": "lots"}, "AUTOPILOT_EXPORTER_MAX_SERIES"),
    ([], {"AUTOPILOT_EXPORTER_ENABLE_EVENTS": "maybe"}, "AUTOPILOT_EXPORTER_ENABLE_EVENTS"),
])
def test_bad_values_name_their_source(argv, environ, culprit):
    with pytest.raises(UsageError, match=culprit):
        parse_settings(["--broker-url", "redis://h/0", *argv], environ)


def test_bad_flag_exits_2_with_a_clear_message():
    result = run(sys.executable, "-m", "exporter", "--broker-url", "redis://h/0", "--purge-after", "soon")
    assert result.returncode == 2
    assert "--purge-after" in result.stderr and "'soon'" in result.stderr


def test_bad_environment_value_exits_2_naming_the_variable():
    result = run(sys.executable, "-m", "exporter", env={"AUTOPILOT_EXPORTER_BROKER_URL": "redis://h/0",
                                                       "AUTOPILOT_EXPORTER_PORT": "http"})
    assert result.returncode == 2
    assert "AUTOPILOT_EXPORTER_PORT" in result.stderr


def test_missing_broker_exits_2():
    result = run(str(BIN / "autopilot-exporter"))
    assert result.returncode == 2
    assert "--broker-url" in result.stderr


def test_unknown_flag_exits_2():
    result = run(str(BIN / "autopilot-exporter"), "--broker-url", "redis://h/0", "--frobnicate")
    assert result.returncode == 2 and "--frobnicate" in result.stderr


def test_readme_documents_every_flag_with_its_variable_and_default():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Exporter", 1)[1].split("\n## ", 1)[0]
    for option in OPTIONS:
        row = next((line for line in section.splitlines() if f"`{option.flag}`" in line), None)
        assert row is not None, f"{option.flag} is not in the README's exporter section"
        assert f"`{option.env}`" in row, f"{option.env} missing from the row of {option.flag}"
        assert f"`{option.default}`" in row or (not option.default and "none" in row), \
            f"default of {option.flag} missing: {row}"


def test_celery_subcommand_help_lists_the_flags():
    result = run(str(BIN / "celery"), "--broker=redis://127.0.0.1:1/0", "exporter", "--help")
    assert result.returncode == 0, result.stderr
    assert "--inspect-interval" in result.stdout and "AUTOPILOT_EXPORTER_" in result.stdout


def test_celery_subcommand_takes_the_broker_from_the_app(broker_url):
    exporter = start_exporter(broker_url, command=[str(BIN / "celery"), "-A", "demo.tasks", "exporter"],
                              env={"CELERY_BROKER_URL": broker_url})
    try:
        metrics = exporter.metrics()
        assert metrics.value("celery_exporter_broker_connected") == 1
        assert metrics.value("celery_queue_length", queue_name="celery") == 0
    finally:
        exporter.stop()


def test_celery_broker_option_is_used(broker_url):
    exporter = start_exporter(broker_url, command=[str(BIN / "celery"), f"--broker={broker_url}", "exporter"])
    try:
        assert exporter.metrics().value("celery_exporter_broker_connected") == 1
    finally:
        exporter.stop()
