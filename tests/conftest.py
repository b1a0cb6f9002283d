"""Shared fixtures: a private Redis broker per session and real Celery worker subprocesses."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.redis_server import RedisServer
from tests.support.workers import Worker, start_worker


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def broker_url(redis_server: RedisServer) -> str:
    """A Redis URL on a database of this test's own (see ``RedisServer.fresh_url``)."""
    return redis_server.fresh_url()


@pytest.fixture
def worker_factory(broker_url: str) -> Iterator[Callable[..., Worker]]:
    """Start real worker subprocesses on the test's broker; all are killed at teardown."""
    started: list[Worker] = []

    def factory(name: str = "w1@autopilot-test", **kwargs) -> Worker:
        worker = start_worker(kwargs.pop("broker_url", broker_url), name, **kwargs)
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        worker.kill()
