"""The decoder on real captured messages and on every kind of garbage."""
from __future__ import annotations

import json
from collections import Counter

import msgspec
import pytest

from exporter import decode
from tests.exporter.captures import capture, capture_events, envelope

LIMIT = 1 << 20


def as_dict(event: decode.Event) -> dict:
    """The fields the decoder kept, with the event type, as a plain dict."""
    return {"type": decode.EVENT_TYPE[type(event)], **msgspec.structs.asdict(event)}


def decode_all(raws: list[bytes]) -> tuple[list[dict], Counter]:
    errors: Counter = Counter()
    events: list[dict] = []

    def error(reason: str) -> None:
        errors[reason] += 1

    for raw in raws:
        body = decode.envelope_body(raw, LIMIT, error)
        if body is not None:
            events.extend(as_dict(event) for event in decode.body_events(body, error))
    return events, errors


@pytest.mark.parametrize("name", ["prefork", "solo", "realdisp_single"])
def test_every_captured_event_decodes(name):
    events, errors = decode_all(capture(name))
    assert not errors
    captured = capture_events(name)
    assert len(events) == len(captured)
    for kept, original in zip(events, captured):
        assert kept.items() <= original.items()


def test_prefork_capture_has_the_expected_mix():
    events, _ = decode_all(capture("prefork"))
    kinds = Counter(e["type"] for e in events)
    assert kinds == {"worker-online": 1, "worker-heartbeat": 5, "worker-offline": 1, "task-sent": 6,
                     "task-received": 6, "task-started": 6, "task-succeeded": 3, "task-failed": 2,
                     "task-retried": 1}


GOOD = {"type": "task-started", "hostname": "w@h", "uuid": "u1", "timestamp": 1.0}
# Nested far deeper than the interpreter's recursion limit.
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", decode.INVALID_JSON),
    (b"[1, 2]", decode.BAD_ENVELOPE),
    (b'{"body": 3, "properties": {}}', decode.BAD_ENVELOPE),
    (b'{"body": "x", "content-type": "application/json"}', decode.BAD_ENVELOPE),
    (envelope(GOOD, content_type="application/x-python-serialize"), decode.UNSUPPORTED_CONTENT_TYPE),
    (json.dumps({"body": "!!!notbase64", "content-type": "application/json",
                 "properties": {"body_encoding": "base64"}}).encode(), decode.BAD_BASE64),
    (envelope(b"{broken"), decode.INVALID_JSON),
    (envelope(json.dumps("just a string")), decode.WRONG_TYPE),
    (envelope({**GOOD, "timestamp": "yesterday"}), decode.WRONG_TYPE),
    (envelope({**GOOD, "timestamp": True}), decode.WRONG_TYPE),
    (envelope({k: v for k, v in GOOD.items() if k != "uuid"}), decode.MISSING_FIELD),
    (envelope({k: v for k, v in GOOD.items() if k != "hostname"}), decode.MISSING_FIELD),
    (envelope({**GOOD, "type": "task-sent"}), decode.MISSING_FIELD),
    (envelope({**GOOD, "type": "task-sent", "name": 5}), decode.WRONG_TYPE),
    (envelope({**GOOD, "type": "task-succeeded", "runtime": "fast"}), decode.WRONG_TYPE),
    (envelope({**GOOD, "type": "worker-heartbeat", "active": "2"}), decode.WRONG_TYPE),
    (envelope({**GOOD, "type": "task-teleported"}), decode.UNKNOWN_TYPE),
    (envelope({"x": "y" * (LIMIT + 1)}), decode.TOO_LARGE),
    # Malformed in ways msgspec reports with exceptions other than its DecodeError.
    (b'{"body": "\xff", "properties": {}, "content-type": "application/json"}', decode.INVALID_JSON),
    (envelope(b'{"type": "task-started", "hostname": "\xff", "uuid": "u", "timestamp": 1}'),
     decode.INVALID_JSON),
    (b'{"deep": ' + DEEP + b', "body": "", "properties": {}}', decode.TOO_DEEP),
    (envelope(DEEP), decode.TOO_DEEP),
    (envelope(b'[{"type": "task-started", "x": ' + DEEP + b'}]'), decode.TOO_DEEP),
])
def test_garbage_is_named_by_its_reason(raw, reason):
    events, errors = decode_all([raw])
    assert events == []
    assert errors == {reason: 1}


def test_a_bad_event_in_a_batch_keeps_its_good_neighbours():
    batch = [GOOD, {"type": "task-started"}, 7, {**GOOD, "uuid": "u2"}]
    events, errors = decode_all([envelope(batch)])
    assert [e["uuid"] for e in events] == ["u1", "u2"]
    assert errors == {decode.MISSING_FIELD: 1, decode.WRONG_TYPE: 1}


def test_a_string_that_is_not_utf8_in_a_batch_keeps_its_good_neighbours():
    not_utf8 = b'{"type": "task-started", "hostname": "w\xff@h", "uuid": "u9", "timestamp": 1.0}'
    batch = b"[" + json.dumps(GOOD).encode() + b", " + not_utf8 + b", " + json.dumps({**GOOD, "uuid": "u2"}).encode() + b"]"
    events, errors = decode_all([envelope(batch)])
    assert [e["uuid"] for e in events] == ["u1", "u2"]
    assert errors == {decode.INVALID_JSON: 1}


def test_unencoded_body_is_accepted():
    events, errors = decode_all([envelope(GOOD, encode=False)])
    assert not errors and events == [GOOD]
