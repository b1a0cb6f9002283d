"""Raw event messages -> decode -> aggregates, with the counts the exporter reports on itself.

Both event sources feed this one path: the Redis fast path hands over pub/sub payloads
(``feed``/``feed_many``), the kombu consumer hands over message bodies (``feed_body``). It is
also the in-process entry point of the benchmark.
"""
from __future__ import annotations

import time
from collections.abc import Iterable

from . import decode
from .aggregates import Aggregates


class EventProcessor:
    def __init__(self, aggregates: Aggregates, max_message_bytes: int = 1_048_576) -> None:
        self.aggregates = aggregates
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
            self._feed(raw, time.monotonic())

    def feed_many(self, raws: Iterable[bytes | str]) -> None:
        """Several payloads under one lock acquisition: what one socket read delivered."""
        with self.lock:
            now = time.monotonic()
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
            self._apply(decode.body_events(body, self._error), time.monotonic())

    def _feed(self, raw: bytes | str, now: float) -> None:
        self.messages += 1
        body = decode.envelope_body(raw, self.max_message_bytes, self._error)
        if body is not None:
            self._apply(decode.body_events(body, self._error), now)

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

    def copy_counts(self) -> tuple[dict[str, int], dict[str, int], float | None]:
        """(events by type, errors by reason, wall time of the last event); caller holds lock."""
        return self.events_by_type, dict(self.errors), self.last_event_time
