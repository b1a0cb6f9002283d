"""A private redis-server per test session, on a free loopback port.

Private so that tests never see events or queues of another process sharing the machine's
Redis, and so that a test can stop and restart the broker under a running service.
"""
from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from .polling import wait_for
from .ports import free_port


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; run ./run.sh setup")
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="autopilot-redis-"))
        self.proc: subprocess.Popen | None = None
        self._db_numbers = itertools.cycle(range(1, 64))

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def fresh_url(self) -> str:
        """A URL on a database no earlier user got recently, emptied first.

        Kombu prefixes the events channel with the database number, so users of different
        databases never see each other's events or queues. Function- and module-scoped
        fixtures both draw from here, so they never share a database by accident.
        """
        db = next(self._db_numbers)
        self.client(db).flushdb()
        return self.url(db)

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--databases", "64",
             "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.client().ping(), timeout=10, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        """Stop and start on the same port: clients see a real broker outage."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
