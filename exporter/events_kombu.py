"""Celery events over any kombu transport other than Redis (amqp://, ...).

A private auto-delete queue bound to the events exchange with routing key ``#``, consumed without
acks; raw message bodies go to the same decode+aggregate path as the Redis fast path.
"""
from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from threading import Event

from kombu import Connection, Consumer, Exchange, Queue
from kombu.message import Message

from .processor import EventProcessor

DRAIN_TIMEOUT = 0.5
# A queue left behind by a crashed exporter disappears after this long without consumers.
QUEUE_EXPIRES = 60.0


class KombuEventSession:
    def __init__(self, broker_url: str, transport_options: dict, processor: EventProcessor,
                 exchange: str, stop: Event) -> None:
        self.broker_url = broker_url
        self.transport_options = transport_options
        self.processor = processor
        self.exchange = Exchange(exchange, type="topic")
        self.stop = stop

    def _on_message(self, message: Message) -> None:
        self.processor.feed_body(message.body, message.content_type)

    def __call__(self, on_connected: Callable[[], None]) -> None:
        with Connection(self.broker_url, transport_options=self.transport_options) as conn:
            conn.ensure_connection(max_retries=1)
            queue = Queue(
                f"celeryev.autopilot-exporter.{uuid.uuid4()}", self.exchange, routing_key="#",
                durable=False, auto_delete=True, exclusive=True, expires=QUEUE_EXPIRES,
            )
            with Consumer(conn, queues=[queue], no_ack=True, on_message=self._on_message,
                          accept=None):
                on_connected()
                while not self.stop.is_set():
                    try:
                        conn.drain_events(timeout=DRAIN_TIMEOUT)
                    except socket.timeout:
                        conn.heartbeat_check()
