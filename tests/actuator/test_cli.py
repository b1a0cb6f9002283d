"""The command line: ``check`` for CI, ``serve`` refusing bad configuration, ``celery actuator``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from actuator.cli import build_settings, main, serve_command
from actuator.settings import GuardSettings
from tests.actuator.payloads import alert, backlog, notification
from tests.support.inspection import task_info
from tests.support.polling import wait_for
from tests.support.ports import free_port
from tests.support.workers import ROOT

BIN = Path(sys.executable).parent
WORKER = "w1@check"
RULES = """\
rules:
  - name: grow-on-backlog
    match: {alertname: CeleryQueueBacklog}
    actions:
      - command: pool_grow
        workers: {consuming: "{{ labels.queue_name }}"}
        n: "{{ (value / 100) | round(0, 'ceil') | int }}"
      - command: rate_limit
        workers: all
        task: demo.add
        rate_limit: 10/s
"""


@pytest.fixture
def files(tmp_path):
    def write(rules: str = RULES, payload: dict | None = None) -> tuple[Path, Path]:
        (tmp_path / "rules.yml").write_text(rules)
        (tmp_path / "payload.json").write_text(json.dumps(payload if payload is not None else backlog("celery", 250)))
        return tmp_path / "rules.yml", tmp_path / "payload.json"
    return write


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "autopilot-actuator"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})


def test_check_prints_the_rendered_commands_without_a_broker(files):
    rules, payload = files()
    done = run("check", "--rules", str(rules), str(payload))
    assert done.returncode == 0, done.stderr
    assert "targets: not resolved (no --broker-url given)" in done.stdout
    assert "rule grow-on-backlog: pool_grow n=3 -> workers consuming 'celery'" in done.stdout
    assert "rule grow-on-backlog: rate_limit task='demo.add' rate_limit='10/s' -> all workers" in done.stdout
    assert done.stdout.rstrip().endswith("0 error(s)")


def test_check_resolves_targets_on_a_live_broker_and_sends_nothing(files, start_workers, module_broker_url,
                                                                   inspector):
    start_workers({"name": WORKER, "queues": ["celery"]})
    target = ("      - {command: pool_target, workers: {consuming: celery}, size: \"{{ value | int }}\",\n"
              "         min_pool: 1, max_pool: 4, direction: up}\n")
    rules, payload = files(RULES + target)
    done = run("check", "--rules", str(rules), str(payload), "--broker-url", module_broker_url, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["targets_resolved"] is True and report["errors"] == 0
    grow, rate, track = report["alerts"][0]["actions"]
    assert (grow["command"], grow["arguments"]) == ("pool_grow", {"n": 3})
    assert [w["name"] for w in grow["targets"]["workers"]] == [WORKER]
    assert grow["targets"]["workers"][0]["pool"] == "prefork"
    assert grow["targets"]["pool"] == {WORKER: "pool_grow n=3"}
    assert (track["arguments"], track["bounds"]) == ({"size": 250}, {"max_pool": 4, "min_pool": 1, "direction": "up"})
    assert track["targets"]["pool"] == {
        WORKER: "pool_grow n=2 (target 4 (size 250 within min_pool 1, max_pool 4); pool had 2 processes)"}
    text = run("check", "--rules", str(rules), str(payload), "--broker-url", module_broker_url).stdout
    assert ("rule grow-on-backlog: pool_target size=250 max_pool=4 min_pool=1 direction=up -> workers consuming "
            "'celery'") in text
    assert f"    {WORKER}: pool_grow n=2 (target 4" in text
    # Had check sent rate_limit, the worker would report it (it is applied before the reply).
    assert task_info(inspector, WORKER, "demo.add") == "demo.add"


def test_check_with_an_unreachable_broker_says_so(files):
    rules, payload = files()
    done = run("check", "--rules", str(rules), str(payload), "--broker-url", f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 0
    assert "targets: not resolved (broker redis://127.0.0.1:" in done.stdout and "unreachable" in done.stdout


@pytest.mark.parametrize(("rules", "payload", "fragment"), [
    (RULES.replace("| int }}", "| int }"), None, "rules.yml:7: rule 'grow-on-backlog': rules[0].actions[0].n: "
                                                 "template syntax error"),
    (RULES.replace("rate_limit: 10/s", "rate_limit: ten"), None, "rules[0].actions[1].rate_limit"),
    (RULES, {"version": "4"}, "payload.json: required field is missing"),
    (RULES, notification(alert({"alertname": "CeleryQueueBacklog", "queue_name": "celery"})),
     "ERROR n: UndefinedError: 'value' is undefined"),
])
def test_check_exits_1_on_broken_rules_payloads_or_actions(files, rules, payload, fragment):
    rules_path, payload_path = files(rules, payload)
    done = run("check", "--rules", str(rules_path), str(payload_path))
    assert done.returncode == 1
    assert fragment in done.stdout


def test_serve_refuses_to_start_on_bad_rules_credentials_or_audit_log(files):
    rules, _ = files(RULES.replace("pool_grow", "pool_grw"))
    done = run("serve", "--rules", str(rules), "--no-auth", "--port", str(free_port()))
    assert done.returncode == 1
    assert "rules.yml:5: rule 'grow-on-backlog': rules[0].actions[0].command: got 'pool_grw'" in done.stderr
    rules, _ = files()
    done = run("serve", "--rules", str(rules), "--port", str(free_port()))
    assert done.returncode == 2 and "authentication is on by default" in done.stderr
    done = run("serve", "--rules", str(rules), "--basic-auth", "admin", "--port", str(free_port()))
    assert done.returncode == 2 and "--basic-auth" in done.stderr and "expected user:password" in done.stderr
    blocker = rules.parent / "not-a-directory"
    blocker.write_text("")
    done = run("serve", "--rules", str(rules), "--no-auth", "--audit-db", str(blocker / "audit.sqlite3"),
               "--port", str(free_port()))
    assert done.returncode == 1 and f"error: cannot open the audit log {blocker}/audit.sqlite3" in done.stderr
    done = run("serve", "--rules", str(rules), "--no-auth", "--audit-db", str(rules.parent / "audit.sqlite3"),
               "--state-db", str(blocker / "state.sqlite3"), "--port", str(free_port()))
    assert done.returncode == 1 and f"error: cannot open the guard state {blocker}/state.sqlite3" in done.stderr


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--state-url", "http://cache:6379"], "--state-url"),
    (["--state-url", "redis://cache:6379/0", "--state-db", "s.sqlite3"], "--state-db contradicts --state-url"),
    (["--idempotency-ttl", "soon"], "expected a duration like"),
    (["--idempotency-ttl", "0"], "--idempotency-ttl"),
    (["--prune-interval", "0.5s"], "expected at least 1"),
    (["--audit-max-rows", "-1"], "--audit-max-rows"),
])
def test_serve_refuses_bad_guard_flags(flags, fragment):
    done = CliRunner().invoke(main, ["serve", "--rules", "r.yml", "--no-auth", *flags])
    assert done.exit_code == 2 and fragment in done.output, done.output


def test_guard_flags_and_their_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOPILOT_ACTUATOR_IDEMPOTENCY_TTL", "2h")
    monkeypatch.setenv("AUTOPILOT_ACTUATOR_STATE_URL", "redis://cache:6379/3")
    args = ["--rules", "r.yml", "--no-auth", "--pool-settle-time", "1500ms", "--audit-max-age", "0",
            "--audit-db", str(tmp_path / "a.sqlite3")]
    settings = build_settings(serve_command.make_context("serve", list(args)).params, None)
    assert settings.guards == GuardSettings(state_url="redis://cache:6379/3", idempotency_ttl=7200,
                                            pool_settle_time=1.5)
    assert (settings.retention.max_age, settings.retention.max_rows) == (None, 100_000)
    monkeypatch.delenv("AUTOPILOT_ACTUATOR_STATE_URL")
    settings = build_settings(serve_command.make_context("serve", list(args)).params, None)
    assert settings.state_db == tmp_path / "a.state.sqlite3"


@pytest.mark.parametrize("how", ["app", "broker-flag"])
def test_celery_actuator_subcommand_uses_the_apps_broker(files, tmp_path, module_broker_url, how):
    rules, _ = files()
    port = free_port()
    selector = ["-A", "demo.tasks"] if how == "app" else [f"--broker={module_broker_url}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CELERY_BROKER_URL": module_broker_url,
           "AUTOPILOT_ACTUATOR_BASIC_AUTH": "admin:secret"}
    process = subprocess.Popen(
        [str(BIN / "celery"), *selector, "actuator", "--rules", str(rules), "--port", str(port),
         "--host", "127.0.0.1", "--audit-db", str(tmp_path / "audit.sqlite3")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        health = wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json(),
                          timeout=20, what="celery actuator to answer")
        assert health["broker"] == module_broker_url
    finally:
        process.terminate()
        process.wait(timeout=10)
