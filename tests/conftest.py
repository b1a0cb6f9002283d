"""Shared fixtures: a private Redis broker per session and real Celery worker subprocesses."""
from __future__ import annotations

import itertools
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


_db_numbers = itertools.cycle(range(1, 64))


@pytest.fixture
def broker_url(redis_server: RedisServer) -> str:
    """A Redis URL on a database no earlier test used recently, emptied first.

    Kombu prefixes the events channel with the database number, so tests on different databases
    never see each other's events or queues.
    """
    db = next(_db_numbers)
    redis_server.client(db).flushdb()
    return redis_server.url(db)


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
