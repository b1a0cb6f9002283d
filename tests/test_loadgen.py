"""The benchmark's load generator sends what real workers send (tests/fixtures/celery-events)."""
from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import pytest

from bench.loadgen import LoadShape, build

CAPTURES = Path(__file__).parent / "fixtures" / "celery-events"


def shape_of(value: object) -> object:
    """Keys in order and value types, recursively: what must match byte-for-byte in layout."""
    if isinstance(value, dict):
        return [(k, shape_of(v)) for k, v in value.items()]
    if isinstance(value, list):
        return ["list"]
    return type(value).__name__


def decode(data: str) -> tuple[dict, list[dict]]:
    envelope = json.loads(data)
    body = json.loads(base64.b64decode(envelope["body"]))
    return envelope, body if isinstance(body, list) else [body]


def captured() -> tuple[dict[str, object], dict[str, object], dict[str, str]]:
    envelopes, events, channels = {}, {}, {}
    for line in (CAPTURES / "prefork.jsonl").read_text().splitlines():
        record = json.loads(line)
        envelope, body = decode(record["data"])
        routing_key = envelope["properties"]["delivery_info"]["routing_key"]
        envelopes.setdefault(routing_key, shape_of({**envelope, "body": "b64"}))
        channels.setdefault(routing_key, record["channel"])
        for event in body:
            events.setdefault(event["type"], shape_of(event))
    return envelopes, events, channels


@pytest.fixture(scope="module")
def generated():
    messages, n_events = build(LoadShape(workers=3, task_names=4, queues=2, failure_ratio=0.2), 4_000, 10_000)
    return messages, n_events


def test_envelopes_channels_and_events_have_the_captured_shape(generated):
    want_envelopes, want_events, want_channels = captured()
    messages, _ = generated
    seen_types: Counter[str] = Counter()
    for message in messages:
        envelope, body = decode(message.data)
        routing_key = envelope["properties"]["delivery_info"]["routing_key"]
        assert shape_of({**envelope, "body": "b64"}) == want_envelopes[routing_key]
        assert message.channel == want_channels[routing_key]
        # Values that could be null in the capture (eta, parent_id, ...) keep their captured type.
        for event in body:
            assert [k for k, _ in shape_of(event)] == [k for k, _ in want_events[event["type"]]]
            seen_types[event["type"]] += 1
        assert message.events == len(body)
    assert set(seen_types) == {"worker-online", "task-sent", "task-received", "task-started",
                               "task-succeeded", "task-failed"}


def test_every_task_runs_its_whole_lifecycle_with_a_distinct_id(generated):
    messages, n_events = generated
    by_type: dict[str, list[str]] = {}
    for message in messages:
        for event in decode(message.data)[1]:
            if "uuid" in event:
                by_type.setdefault(event["type"], []).append(event["uuid"])
    sent = by_type["task-sent"]
    assert len(sent) == len(set(sent)) == 1_000
    assert sorted(by_type["task-received"]) == sorted(by_type["task-started"]) == sorted(sent)
    finished = by_type["task-succeeded"] + by_type["task-failed"]
    assert sorted(finished) == sorted(sent)
    assert 0 < len(by_type["task-failed"]) < len(sent)
    assert n_events == sum(m.events for m in messages)


def test_worker_events_arrive_batched_like_a_real_prefork_worker(generated):
    messages, _ = generated
    multi = [m.events for m in messages if m.channel.endswith("/task.multi")]
    assert multi and max(multi) <= 4 and 2.0 < sum(multi) / len(multi) < 3.5
