"""The real Celery event captures in tests/fixtures/celery-events, and message builders."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import msgspec

from exporter import decode

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "celery-events"


def capture(name: str) -> list[bytes]:
    """The raw pub/sub payloads of one capture file, in order."""
    lines = (FIXTURES / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line)["data"].encode() for line in lines if line.strip()]


def capture_events(name: str) -> list[dict]:
    """The events inside a capture, flattened out of task.multi batches."""
    events: list[dict] = []
    for raw in capture(name):
        body = json.loads(base64.b64decode(json.loads(raw)["body"]))
        events.extend(body if isinstance(body, list) else [body])
    return events


def envelope(body: object, *, routing_key: str = "task.multi", content_type: str = "application/json",
             encode: bool = True) -> bytes:
    """A message shaped like kombu's (as in the captures) around ``body``."""
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    if isinstance(data, str):
        data = data.encode()
    return json.dumps({
        "body": base64.b64encode(data).decode() if encode else data.decode(),
        "content-encoding": "utf-8", "content-type": content_type,
        "headers": {"hostname": "w@test"},
        "properties": {"delivery_mode": 1,
                       "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
                       "priority": 0, "body_encoding": "base64" if encode else None,
                       "delivery_tag": "00000000-0000-0000-0000-000000000000"},
    }).encode()


def event(fields: dict) -> decode.Event:
    """An event struct from a plain dict, validated as one off the wire."""
    return msgspec.convert(fields, decode.AnyEvent)
