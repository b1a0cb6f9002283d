"""Where and how to reach a Redis broker: address, database, credentials and TLS.

Read from the broker URL as kombu reads it — ``redis://`` or ``rediss://``, several of them
separated by ``;`` for failover, TLS options in the query string (``ssl_cert_reqs``,
``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_check_hostname``) — and from the
Celery app's ``broker_use_ssl``, which wins, as in kombu.
"""
from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

_CERT_REQS = {
    "cert_required": ssl.CERT_REQUIRED, "required": ssl.CERT_REQUIRED,
    "cert_optional": ssl.CERT_OPTIONAL, "optional": ssl.CERT_OPTIONAL,
    "cert_none": ssl.CERT_NONE, "none": ssl.CERT_NONE,
}
TLS_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")


def split_urls(broker_url: str) -> list[str]:
    """The failover list of a broker URL (kombu's ``;`` separator)."""
    return [url.strip() for url in broker_url.split(";") if url.strip()]


def is_redis_url(broker_url: str) -> bool:
    return all(urlsplit(url).scheme in ("redis", "rediss") for url in split_urls(broker_url))


def _cert_reqs(value: object) -> ssl.VerifyMode:
    if isinstance(value, ssl.VerifyMode):
        return value
    try:
        return _CERT_REQS[str(value).lower()]
    except KeyError:
        raise ValueError(f"ssl_cert_reqs {value!r} is not one of CERT_REQUIRED, CERT_OPTIONAL, CERT_NONE") from None


def _flag(value: object) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class RedisTarget:
    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    # The TLS options (TLS_OPTIONS) when the connection uses TLS, else None.
    tls: Mapping[str, Any] | None = field(default=None)

    @classmethod
    def from_url(cls, url: str, use_ssl: Mapping[str, Any] | bool | None = None) -> RedisTarget:
        params = parse_url(url)
        tls = None
        if urlsplit(url).scheme == "rediss" or isinstance(use_ssl, Mapping) or use_ssl is True:
            tls = {key: params[key] for key in TLS_OPTIONS if key in params}
            if isinstance(use_ssl, Mapping):
                tls.update((key, value) for key, value in use_ssl.items() if key in TLS_OPTIONS)
            _cert_reqs(tls.get("ssl_cert_reqs", "required"))  # a bad value fails here, at start-up
        return cls(
            host=params.get("host") or "localhost",
            port=int(params.get("port") or 6379),
            db=int(params.get("db") or 0),
            username=params.get("username"),
            password=params.get("password"),
            tls=tls,
        )

    @classmethod
    def all_from_url(cls, broker_url: str, use_ssl: Mapping[str, Any] | bool | None = None) -> list[RedisTarget]:
        return [cls.from_url(url, use_ssl) for url in split_urls(broker_url)]

    def _verification(self) -> tuple[ssl.VerifyMode, bool]:
        """(certificate requirement, whether the host name is checked): both, unless turned off."""
        tls = self.tls or {}
        reqs = _cert_reqs(tls.get("ssl_cert_reqs", "required"))
        return reqs, reqs != ssl.CERT_NONE and _flag(tls.get("ssl_check_hostname", True))

    def ssl_context(self) -> ssl.SSLContext:
        tls = self.tls or {}
        context = ssl.create_default_context(cafile=tls.get("ssl_ca_certs"))
        if tls.get("ssl_certfile"):
            context.load_cert_chain(tls["ssl_certfile"], tls.get("ssl_keyfile"))
        context.check_hostname = False
        context.verify_mode, context.check_hostname = self._verification()
        return context

    def client(self, timeout: float) -> redis.Redis:
        """A redis-py client for commands (queue depths), every socket operation bounded, and
        without redis-py's retries: the caller polls again anyway, and must see a failure soon."""
        tls: dict[str, Any] = {}
        if self.tls is not None:
            reqs, check_hostname = self._verification()
            tls = {"ssl": True, "ssl_cert_reqs": reqs, "ssl_check_hostname": check_hostname,
                   "ssl_ca_certs": self.tls.get("ssl_ca_certs"), "ssl_certfile": self.tls.get("ssl_certfile"),
                   "ssl_keyfile": self.tls.get("ssl_keyfile")}
        return redis.Redis(host=self.host, port=self.port, db=self.db, username=self.username,
                           password=self.password, socket_timeout=timeout, socket_connect_timeout=timeout,
                           retry=Retry(NoBackoff(), 0), **tls)
