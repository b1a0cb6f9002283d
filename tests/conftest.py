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


def _fresh_db_url(redis_server: RedisServer) -> str:
    """A Redis URL on a database no earlier test used recently, emptied first.

    Kombu prefixes the events channel with the database number, so tests on different databases
    never see each other's events or queues.
    """
    db = next(_db_numbers)
    redis_server.client(db).flushdb()
    return redis_server.url(db)


@pytest.fixture
def broker_url(redis_server: RedisServer) -> str:
    return _fresh_db_url(redis_server)


@pytest.fixture(scope="module")
def module_broker_url(redis_server: RedisServer) -> str:
    """A database of its own for a whole test module (workers started once per module)."""
    return _fresh_db_url(redis_server)


def _worker_factory(default_broker_url: str) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def factory(name: str = "w1@autopilot-test", **kwargs) -> Worker:
        worker = start_worker(kwargs.pop("broker_url", default_broker_url), name, **kwargs)
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        worker.kill()


@pytest.fixture
def worker_factory(broker_url: str) -> Iterator[Callable[..., Worker]]:
    """Start real worker subprocesses on the test's broker; all are killed at teardown."""
    yield from _worker_factory(broker_url)


@pytest.fixture(scope="module")
def module_worker_factory(module_broker_url: str) -> Iterator[Callable[..., Worker]]:
    """Workers shared by the tests of one module, on ``module_broker_url``."""
    yield from _worker_factory(module_broker_url)
