"""A throwaway RabbitMQ vhost on 127.0.0.1:5672, or a skip that says why there is none.

Each user gets its own vhost, so nothing sees another test's queues or events.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

RABBIT = ("127.0.0.1", 5672)


def _reachable() -> bool:
    try:
        with socket.create_connection(RABBIT, timeout=1):
            return True
    except OSError:
        return False


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def throwaway_vhost() -> Iterator[str]:
    """The amqp:// URL of a new vhost, deleted afterwards; skips the test when RabbitMQ is absent."""
    if not _reachable():
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672 (./run.sh setup starts it when installed)")
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: cannot create a throwaway vhost")
    vhost = f"autopilot-test-{uuid.uuid4().hex[:8]}"
    try:
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot create a RabbitMQ vhost with rabbitmqctl: {exc}")
    try:
        yield f"amqp://guest:guest@{RABBIT[0]}:{RABBIT[1]}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)
