"""Raw event messages -> decode -> aggregates, with the counts the exporter reports on itself.

Both event sources feed this one path: the Redis fast path hands over pub/sub payloads
(``feed``/``feed_many``), the kombu consumer hands over message bodies (``feed_body``). It is
also the in-process entry point of the benchmark.

A message whose handling raises anything unexpected is counted (reason ``internal``), logged, and
skipped: the messages after it in the same socket read must not be lost with it, nor the
connection.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from . import decode
from .aggregates import Aggregates

log = logging.getLogger(__name__)

# How much of a message that broke the exporter goes into the log.
_LOGGED_BYTES = 200


class EventProcessor:
    def __init__(self, aggregates: Aggregates, max_message_bytes: int = 1_048_576,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``clock`` stamps when each host was last heard from (see ``event_clock``)."""
        self.aggregates = aggregates
        self.clock = clock
        self.lock = aggregates.lock
        self.max_message_bytes = max_message_bytes
        # Counted by struct class on the hot path, named by event type when read.
        self._events_by_class: dict[type[decode.Event], int] = {}
        self.errors: dict[str, int] = {}
        self.messages = 0
        self.last_event_time: float | None = None

    @property
    def events_applied(self) -> int:
        return sum(self._events_by_class.values())

    @property
    def events_by_type(self) -> dict[str, int]:
        return {decode.EVENT_TYPE[cls]: n for cls, n in self._events_by_class.items()}

    def feed(self, raw: bytes | str) -> None:
        """One Redis pub/sub payload (kombu's JSON envelope)."""
        with self.lock:
            self._feed(raw, self.clock())

    def feed_many(self, raws: Iterable[bytes | str]) -> None:
        """Several payloads under one lock acquisition: what one socket read delivered."""
        with self.lock:
            now = self.clock()
            for raw in raws:
                self._feed(raw, now)

    def feed_body(self, body: bytes | str, content_type: str | None) -> None:
        """One message body as a kombu consumer receives it (envelope already taken apart)."""
        with self.lock:
            self.messages += 1
            if content_type != decode.JSON_CONTENT_TYPE:
                self._error(decode.UNSUPPORTED_CONTENT_TYPE)
                return
            if len(body) > self.max_message_bytes:
                self._error(decode.TOO_LARGE)
                return
            try:
                self._apply(decode.body_events(body, self._error), self.clock())
            except Exception:  # noqa: BLE001 - one message must never stop the consumer
                self._internal_error(body)

    def _feed(self, raw: bytes | str, now: float) -> None:
        self.messages += 1
        try:
            body = decode.envelope_body(raw, self.max_message_bytes, self._error)
            if body is not None:
                self._apply(decode.body_events(body, self._error), now)
        except Exception:  # noqa: BLE001 - one message must never stop the consumer
            self._internal_error(raw)

    def _apply(self, events: list[decode.Event], now: float) -> None:
        if not events:
            return
        apply = self.aggregates.apply
        by_class = self._events_by_class
        for event in events:
            apply(event, now)
            kind = type(event)
            by_class[kind] = by_class.get(kind, 0) + 1
        self.last_event_time = time.time()

    def _error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def _internal_error(self, message: bytes | str) -> None:
        """Count and log a message that broke the exporter; the log is thinned out to the 1st,
        2nd, 4th, 8th, ... such message, so that a flood of them cannot flood the log."""
        self._error(decode.INTERNAL)
        count = self.errors[decode.INTERNAL]
        if count & (count - 1) == 0:
            log.error("skipped an event message that the exporter failed to handle (%d so far); "
                      "it began with %r", count, message[:_LOGGED_BYTES], exc_info=True)

    def copy_counts(self) -> tuple[dict[str, int], dict[str, int], float | None]:
        """(events by type, errors by reason, wall time of the last event); caller holds lock."""
        return self.events_by_type, dict(self.errors), self.last_event_time
