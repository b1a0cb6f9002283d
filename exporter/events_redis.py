"""The Redis fast path: Celery events straight off Redis pub/sub, parsed by hiredis.

kombu's Consumer costs tens of µs per message, and a pub/sub subscriber that falls 32 MB behind
is disconnected by Redis (losing events), so on redis:// and rediss:// the exporter subscribes
itself. kombu publishes fanout messages to ``{global_keyprefix}/{db}.{exchange}/{routing_key}``
when ``fanout_patterns`` is on (the default) and to ``{global_keyprefix}/{db}.{exchange}`` when it
is off; both are subscribed, and no message is published to both.

A connection can die without being closed (a NAT or firewall forgets it, a host vanishes): reads
then simply time out, forever. So a connection silent for ``heartbeat`` seconds gets a PING
(allowed while subscribed), and one that does not answer within as long again is dropped and
made anew. Workers send heartbeats every 2 s, so a live cluster's connection is rarely pinged.
"""
from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from threading import Event

import hiredis

from .processor import EventProcessor
from .reconnect import SilentConnection
from .redis_target import RedisTarget

READ_SIZE = 1 << 18
# How often a blocked read wakes up to look at the stop flag.
READ_TIMEOUT = 0.5
CONNECT_TIMEOUT = 5.0

_MESSAGE_KINDS = (b"pmessage", b"message")
_GLOB_SPECIALS = re.compile(r"([\\*?\[\]])")


def channels(db: int, exchange: str, key_prefix: str) -> tuple[str, str]:
    """(pattern for fanout_patterns on, channel for fanout_patterns off).

    The prefix and the exchange are taken literally in the pattern: glob characters in them
    are escaped, so ``celeryev*`` does not also subscribe to ``celeryev2``'s events.
    """
    base = f"{key_prefix}/{db}.{exchange}"
    return _GLOB_SPECIALS.sub(r"\\\1", base) + "/*", base


_PING = b"*1\r\n$4\r\nPING\r\n"


def encode_command(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def keep_alive(sock: socket.socket, idle: float) -> None:
    """TCP keepalive probes after ``idle`` seconds of silence (the OS default waits two hours),
    where the platform lets us set it; the PING above is what detects a dead peer everywhere."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    seconds = max(1, round(idle))
    for option, value in (("TCP_KEEPIDLE", seconds), ("TCP_KEEPINTVL", seconds), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class RedisEventSession:
    """One connection's life: connect, authenticate, subscribe, feed payloads until it breaks.

    With several broker URLs (failover), each connection goes to the next one in turn.
    """

    def __init__(self, targets: Sequence[RedisTarget], processor: EventProcessor, exchange: str,
                 key_prefix: str, heartbeat: float, stop: Event) -> None:
        self.targets = targets
        self.processor = processor
        self.exchange = exchange
        self.key_prefix = key_prefix
        self.heartbeat = heartbeat
        self.stop = stop
        self._attempts = 0

    def _connect(self, target: RedisTarget) -> socket.socket:
        sock = socket.create_connection((target.host, target.port), timeout=CONNECT_TIMEOUT)
        keep_alive(sock, self.heartbeat)
        if target.tls is not None:
            sock = target.ssl_context().wrap_socket(sock, server_hostname=target.host)
        return sock

    def __call__(self, on_connected: Callable[[], None]) -> None:
        target = self.targets[self._attempts % len(self.targets)]
        self._attempts += 1
        pattern, channel = channels(target.db, self.exchange, self.key_prefix)
        sock = self._connect(target)
        try:
            reader = hiredis.Reader()
            if target.password is not None:
                auth = (("AUTH", target.username, target.password) if target.username
                        else ("AUTH", target.password))
                sock.sendall(encode_command(*auth))
                reply = self._read_reply(sock, reader)
                if isinstance(reply, hiredis.ReplyError):
                    raise ConnectionError(f"Redis refused AUTH: {reply}")
            sock.sendall(encode_command("PSUBSCRIBE", pattern) + encode_command("SUBSCRIBE", channel))
            sock.settimeout(READ_TIMEOUT)
            self._consume(sock, reader, on_connected)
        finally:
            sock.close()

    @staticmethod
    def _read_reply(sock: socket.socket, reader: hiredis.Reader) -> object:
        while True:
            reply = reader.gets()
            if reply is not False:
                return reply
            data = sock.recv(READ_SIZE)
            if not data:
                raise ConnectionError("Redis closed the connection")
            reader.feed(data)

    def _consume(self, sock: socket.socket, reader: hiredis.Reader, on_connected: Callable[[], None]) -> None:
        feed_many = self.processor.feed_many
        recv = sock.recv
        gets = reader.gets
        heartbeat = self.heartbeat
        # Since when nothing came (None: data came in the last read), and when a PING went out.
        silent_since: float | None = None
        pinged_at: float | None = None
        while not self.stop.is_set():
            try:
                data = recv(READ_SIZE)
            except (socket.timeout, ssl.SSLWantReadError):
                now = time.monotonic()
                if silent_since is None:
                    silent_since = now - READ_TIMEOUT
                if pinged_at is None:
                    if now - silent_since >= heartbeat:
                        sock.sendall(_PING)
                        pinged_at = now
                elif now - pinged_at >= heartbeat:
                    raise SilentConnection(f"Redis did not answer a PING within {heartbeat:g}s: "
                                           "the connection is dead", since=silent_since)
                continue
            if not data:
                raise ConnectionError("Redis closed the connection")
            silent_since = pinged_at = None
            reader.feed(data)
            payloads = []
            reply = gets()
            while reply is not False:
                if type(reply) is not list:
                    raise ConnectionError(f"Redis answered the subscription with {reply!r}")
                kind = reply[0]
                if kind in _MESSAGE_KINDS:
                    payloads.append(reply[-1])
                elif kind == b"subscribe":
                    on_connected()
                reply = gets()
            if payloads:
                feed_many(payloads)
