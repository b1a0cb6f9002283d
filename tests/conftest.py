"""Shared fixtures: a private Redis broker per session, real Celery worker subprocesses, and for
access-control tests a real OpenID provider, a throwaway CA and a headless Chromium."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from selenium.webdriver import Chrome

from tests.support.browser import headless_chromium
from tests.support.oidc_provider import OidcProvider
from tests.support.redis_server import RedisServer
from tests.support.tls import CertificateAuthority
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


@pytest.fixture(scope="module")
def module_broker_url(redis_server: RedisServer) -> str:
    """A database of its own for a whole test module (workers started once per module)."""
    return redis_server.fresh_url()


def _worker_factory(default_broker_url: str) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def factory(name: str = "w1@autopilot-test", **kwargs) -> Worker:
        worker = start_worker(kwargs.pop("broker_url", default_broker_url), name, **kwargs)
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        worker.kill()


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """oidc-provider with DEFAULT_USERS and the actuator as resource server (ACTUATOR_RESOURCE).

    Shared by the session: register the clients a test needs with ``register_client``.
    """
    with OidcProvider() as provider:
        yield provider


@pytest.fixture(scope="session")
def certificate_authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """A CA made for this session; issue server and client certificates from it."""
    return CertificateAuthority(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def browser() -> Iterator[Chrome]:
    """A headless Chromium with a fresh profile (no cookies from earlier tests)."""
    with headless_chromium() as driver:
        yield driver


@pytest.fixture
def worker_factory(broker_url: str) -> Iterator[Callable[..., Worker]]:
    """Start real worker subprocesses on the test's broker; all are killed at teardown."""
    yield from _worker_factory(broker_url)


@pytest.fixture(scope="module")
def module_worker_factory(module_broker_url: str) -> Iterator[Callable[..., Worker]]:
    """Workers shared by the tests of one module, on ``module_broker_url``."""
    yield from _worker_factory(module_broker_url)
