"""Flags, environment variables, their errors, and the three ways to start the exporter."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery

from exporter.celery_command import app_celery_config, app_fallbacks
from exporter.cli import OPTIONS, UsageError, parse_settings
from exporter.redis_target import RedisTarget
from exporter.service import celery_app
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
    (["--inspect-interval", "inf"], {}, "--inspect-interval"),
    (["--heartbeat-timeout", "nan"], {}, "--heartbeat-timeout"),
    (["--runtime-buckets", "0.5,1,inf"], {}, "--runtime-buckets"),
    (["--queue-wait-buckets", "nan,1"], {}, "--queue-wait-buckets"),
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


def test_the_apps_broker_is_taken_as_written_with_its_connection_settings():
    app = Celery("proj", set_as_current=False)
    app.conf.broker_url = ["rediss://:secret@a:6380/2?ssl_cert_reqs=required", "rediss://b:6380/2"]
    app.conf.broker_use_ssl = {"ssl_ca_certs": "/etc/ca.pem"}
    app.conf.broker_transport_options = {"global_keyprefix": "t7:", "visibility_timeout": 60}
    app.conf.control_exchange = "ctl"
    app.conf.task_serializer = "pickle"
    settings = parse_settings([], {}, fallbacks=app_fallbacks(app), celery_config=app_celery_config(app))
    assert settings.broker_url == "rediss://:secret@a:6380/2?ssl_cert_reqs=required;rediss://b:6380/2"
    assert (settings.redis_key_prefix, settings.control_exchange) == ("t7:", "ctl")
    assert settings.celery_config["broker_use_ssl"] == {"ssl_ca_certs": "/etc/ca.pem"}
    assert settings.celery_config["task_serializer"] == "pickle"
    exporter_app = celery_app(settings)
    assert exporter_app.conf.broker_transport_options["visibility_timeout"] == 60
    assert exporter_app.conf.control_exchange == "ctl"
    targets = RedisTarget.all_from_url(settings.broker_url, exporter_app.conf.broker_use_ssl)
    assert [(t.host, t.db, t.tls["ssl_ca_certs"]) for t in targets] == [("a", 2, "/etc/ca.pem"), ("b", 2, "/etc/ca.pem")]


def test_a_bad_tls_setting_or_a_busy_port_exits_1_with_the_reason(broker_url):
    bad = run(sys.executable, "-m", "exporter", "--broker-url", "rediss://127.0.0.1:1/0?ssl_cert_reqs=maybe")
    assert bad.returncode == 1 and "ssl_cert_reqs 'maybe'" in bad.stderr, bad.stderr
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run(sys.executable, "-m", "exporter", "--broker-url", broker_url, "--host", "127.0.0.1",
                     "--port", str(port))
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
