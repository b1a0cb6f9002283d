"""A private redis-server per test session, on a free loopback port.

Private so that tests never see events or queues of another process sharing the machine's
Redis, and so that a test can stop and restart the broker under a running service. With ``tls``
it listens with TLS only and requires a client certificate from the same CA (mutual TLS).
"""
from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import redis

from .polling import wait_for
from .ports import free_port
from .tls import CertificateAuthority, IssuedCertificate


@dataclass(frozen=True)
class RedisTls:
    """The server's certificate, and the client certificate it accepts, both from ``ca``."""

    ca: CertificateAuthority
    server: IssuedCertificate
    client: IssuedCertificate

    @classmethod
    def issue(cls, ca: CertificateAuthority) -> RedisTls:
        return cls(ca, ca.issue_server("redis"), ca.issue_client("exporter"))

    def query(self) -> str:
        """The rediss:// query string that trusts ``ca`` and presents the client certificate."""
        return (f"ssl_cert_reqs=required&ssl_ca_certs={self.ca.cert_file}"
                f"&ssl_certfile={self.client.cert_file}&ssl_keyfile={self.client.key_file}")


class RedisServer:
    def __init__(self, port: int | None = None, tls: RedisTls | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; run ./run.sh setup")
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="autopilot-redis-"))
        self.proc: subprocess.Popen | None = None
        self.tls = tls
        self._db_numbers = itertools.cycle(range(1, 64))

    def url(self, db: int = 0) -> str:
        if self.tls is not None:
            return f"rediss://127.0.0.1:{self.port}/{db}?{self.tls.query()}"
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
        return redis.Redis.from_url(self.url(db))

    def start(self) -> None:
        listen = ["--port", str(self.port)]
        if self.tls is not None:
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "yes",
                      "--tls-cert-file", str(self.tls.server.cert_file),
                      "--tls-key-file", str(self.tls.server.key_file),
                      "--tls-ca-cert-file", str(self.tls.ca.cert_file)]
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", *listen, "--save", "",
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
