"""The processor keeps going past any message: every problem is counted, nothing escapes."""
from __future__ import annotations

import logging

from exporter import decode
from exporter.aggregates import Aggregates
from exporter.processor import EventProcessor
from exporter.settings import DEFAULT_QUEUE_WAIT_BUCKETS, DEFAULT_RUNTIME_BUCKETS
from tests.exporter.captures import envelope


def started(uuid: str, hostname: str = "w@h") -> bytes:
    return envelope({"type": "task-started", "hostname": hostname, "uuid": uuid, "timestamp": 1.0})


NOT_UTF8 = b'{"body": "\xff", "properties": {}, "content-type": "application/json"}'
DEEP = envelope(b"[" * 100_000 + b"]" * 100_000)


def test_messages_after_a_malformed_one_in_the_same_read_are_applied():
    processor = EventProcessor(Aggregates(DEFAULT_RUNTIME_BUCKETS, DEFAULT_QUEUE_WAIT_BUCKETS))
    processor.feed_many([started("1"), NOT_UTF8, DEEP, started("2")])
    assert processor.events_applied == 2
    assert processor.errors == {decode.INVALID_JSON: 1, decode.TOO_DEEP: 1}
    processor.feed_body(b"\xff", decode.JSON_CONTENT_TYPE)
    processor.feed_body(b"[" * 100_000, decode.JSON_CONTENT_TYPE)
    assert processor.errors == {decode.INVALID_JSON: 2, decode.TOO_DEEP: 2}


class BrokenAggregates(Aggregates):
    """Fails on one host's events, as a bug in the aggregates would."""

    def apply(self, event: decode.Event, now: float) -> None:
        if event.hostname == "poison@h":
            raise KeyError("a bug")
        super().apply(event, now)


def test_a_message_the_exporter_fails_on_is_counted_logged_and_skipped(caplog):
    processor = EventProcessor(BrokenAggregates(DEFAULT_RUNTIME_BUCKETS, DEFAULT_QUEUE_WAIT_BUCKETS))
    with caplog.at_level(logging.ERROR, logger="exporter.processor"):
        processor.feed_many([started("1"), started("2", "poison@h"), started("3")])
        processor.feed_body(b'{"type": "task-started", "hostname": "poison@h", "uuid": "4", "timestamp": 1}',
                            decode.JSON_CONTENT_TYPE)
        for uuid in range(5, 8):
            processor.feed(started(str(uuid), "poison@h"))
    assert processor.events_applied == 2
    assert processor.errors == {decode.INTERNAL: 5}
    # Logged at the 1st, 2nd and 4th occurrence, with the message's first bytes and the traceback.
    assert len(caplog.records) == 3
    assert "poison@h" in caplog.records[1].getMessage()  # feed_body's message is plain JSON
    assert caplog.records[0].exc_info[0] is KeyError
