"""Celery events over any kombu transport other than Redis (amqp://, ...).

A private auto-delete queue bound to the events exchange with routing key ``#``, consumed without
acks; raw message bodies go to the same decode+aggregate path as the Redis fast path.

Heartbeats (AMQP) are on, and checked after every message or timeout: a consumer that only
receives sends nothing, and without heartbeat frames neither side would notice a dead connection.
When they stop coming, the connection counts as dead since the last message it delivered.
"""
from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from threading import Event

from celery.events.event import get_exchange
from kombu import Connection, Consumer, Queue
from kombu.message import Message

from .processor import EventProcessor
from .reconnect import SilentConnection

DRAIN_TIMEOUT = 0.5
# A queue left behind by a crashed exporter disappears after this long without consumers.
QUEUE_EXPIRES = 60.0


class KombuEventSession:
    def __init__(self, connect: Callable[[float], Connection], processor: EventProcessor,
                 exchange: str, heartbeat: float, stop: Event) -> None:
        """``connect(heartbeat)``: a new, not yet connected, connection to the broker."""
        self.connect = connect
        self.processor = processor
        self.exchange = exchange
        self.heartbeat = heartbeat
        self.stop = stop
        self._last_message = time.monotonic()

    def _on_message(self, message: Message) -> None:
        self._last_message = time.monotonic()
        self.processor.feed_body(message.body, message.content_type)

    def __call__(self, on_connected: Callable[[], None]) -> None:
        conn = self.connect(self.heartbeat)
        try:
            conn.ensure_connection(max_retries=1)
            queue = Queue(
                # Celery's own choice of exchange type: fanout on Redis-based transports.
                f"celeryev.autopilot-exporter.{uuid.uuid4()}", get_exchange(conn, self.exchange), routing_key="#",
                durable=False, auto_delete=True, exclusive=True, expires=QUEUE_EXPIRES,
            )
            Consumer(conn, queues=[queue], no_ack=True, on_message=self._on_message, accept=None).consume()
            on_connected()
            self._consume(conn)
        except BaseException:
            # No goodbye on a failed connection: closing it gracefully waits for answers from the
            # broker, forever on a dead connection. The broker drops the exclusive queue anyway.
            conn.collect()
            raise
        conn.release()

    def _consume(self, conn: Connection) -> None:
        self._last_message = time.monotonic()
        while not self.stop.is_set():
            try:
                conn.drain_events(timeout=DRAIN_TIMEOUT)
            except socket.timeout:
                pass
            try:
                conn.heartbeat_check()
            except conn.connection_errors as exc:
                raise SilentConnection(f"{exc} (heartbeat {self.heartbeat:g}s)",
                                       since=self._last_message) from exc
