"""Fixtures for the actuator: a broker database and workers per module, actuators on demand."""
from __future__ import annotations

import base64
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from celery import Celery

from actuator.rule_file import parse_rules
from actuator.server import build_app
from actuator.settings import AuthSettings, ControlSettings, Settings
from tests.support.actuator_process import ActuatorProcess
from tests.support.inspection import control_app
from tests.support.redis_server import RedisServer
from tests.support.workers import Worker, launch_worker, wait_until_ready

USERS = {"admin": "secret", "operator": "password"}
AUTH = ("admin", "secret")
AUTH_HEADERS = {"Authorization": "Basic " + base64.b64encode(b"admin:secret").decode()}


@pytest.fixture(scope="module")
def module_broker_url(redis_server: RedisServer) -> str:
    """A broker database shared by one test module (workers are started once per module)."""
    return redis_server.fresh_url()


@pytest.fixture(scope="module")
def inspector(module_broker_url: str) -> Iterator[Celery]:
    app = control_app(module_broker_url)
    yield app
    app.close()


@pytest.fixture(scope="module")
def start_workers(module_broker_url: str) -> Iterator[Callable[..., list[Worker]]]:
    """Start several workers in parallel on the module's broker; killed at module end."""
    started: list[Worker] = []

    def start(*specs: dict) -> list[Worker]:
        workers = [launch_worker(module_broker_url, **spec) for spec in specs]
        started.extend(workers)
        wait_until_ready(workers)
        return workers

    yield start
    for worker in started:
        worker.kill()


def post(actuator: ActuatorProcess, body: dict, auth: tuple[str, str] | None = AUTH) -> requests.Response:
    """POST a webhook payload to an actuator subprocess."""
    return requests.post(f"{actuator.url}/webhook", json=body, auth=auth, timeout=60)


def decisions(actuator: ActuatorProcess, **filters: str) -> list[dict]:
    """``GET /actions`` with ``filters``, newest first."""
    answer = requests.get(f"{actuator.url}/actions", params=filters, auth=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["actions"]


def write_rules(directory: Path, text: str) -> Path:
    path = directory / "rules.yml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def start_actuator(module_broker_url: str, tmp_path_factory) -> Iterator[Callable[..., ActuatorProcess]]:
    """``autopilot-actuator serve`` subprocesses on the module's broker; stopped at module end."""
    started: list[ActuatorProcess] = []

    def start(rules: str, *args: str) -> ActuatorProcess:
        path = write_rules(tmp_path_factory.mktemp("rules"), rules)
        auth = ("--basic-auth", ",".join(f"{u}:{p}" for u, p in USERS.items()))
        process = ActuatorProcess(path, module_broker_url, *auth, "--reply-timeout", "2",
                                  "--discovery-interval", "1", *args)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(broker_url: str, **overrides) -> Settings:
        control = ControlSettings(broker_url=broker_url, reply_timeout=2, inspect_timeout=1,
                                  broker_connect_timeout=0.5, discovery_interval=1)
        options = {"rules_path": tmp_path / "rules.yml", "control": control,
                   "auth": AuthSettings(basic_users=USERS), "audit_db": tmp_path / "audit.sqlite3",
                   **overrides}
        return Settings(**options)
    return make


@pytest.fixture
def actuator_client(aiohttp_client, make_settings):
    """An in-process actuator (aiohttp test server) built from rule text and settings overrides."""
    async def make(rules: str, broker_url: str, **overrides):
        settings = make_settings(broker_url, **overrides)
        return await aiohttp_client(build_app(settings, parse_rules(textwrap.dedent(rules), "rules.yml")))
    return make
