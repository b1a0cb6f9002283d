"""In-process CPU cost per event: the exporter's decode+aggregate path against Celery's.

All three run on the same recorded messages (the load generator's, same shape as real captures),
one after the other in this process, timed with ``time.process_time``:

- exporter: raw Redis pub/sub payloads → ``EventProcessor.feed_many`` (decode + aggregate), in
  chunks the size one socket read typically delivers;
- Celery ``State.event`` alone, on events already decoded (the cost Celery pays per event even
  before decoding);
- Celery's whole path: kombu's envelope and body decoding, ``EventReceiver.event_from_message``
  (clock and timestamp adjustment) and ``State.event`` — what Flower runs per event.
"""
from __future__ import annotations

import base64
import gc
import time
from dataclasses import dataclass

from celery import Celery
from celery.events.state import State
from kombu.utils.json import loads as kombu_loads

from bench.loadgen import LoadShape, build
from exporter.aggregates import Aggregates
from exporter.processor import EventProcessor
from exporter.settings import DEFAULT_QUEUE_WAIT_BUCKETS, DEFAULT_RUNTIME_BUCKETS

CHUNK = 64


@dataclass
class CostReport:
    events: int
    exporter_us: float
    celery_state_us: float
    celery_full_us: float

    @property
    def vs_state(self) -> float:
        return self.celery_state_us / self.exporter_us

    @property
    def vs_full(self) -> float:
        return self.celery_full_us / self.exporter_us


def recorded(n_events: int) -> tuple[list[bytes], int]:
    messages, total = build(LoadShape(), n_events, 40_000)
    return [m.data.encode() for m in messages], total


def exporter_seconds(raws: list[bytes]) -> tuple[float, int]:
    processor = EventProcessor(Aggregates(DEFAULT_RUNTIME_BUCKETS, DEFAULT_QUEUE_WAIT_BUCKETS))
    chunks = [raws[i:i + CHUNK] for i in range(0, len(raws), CHUNK)]
    gc.collect()
    start = time.process_time()
    for chunk in chunks:
        processor.feed_many(chunk)
    elapsed = time.process_time() - start
    if processor.errors:
        raise AssertionError(f"the exporter rejected recorded events: {processor.errors}")
    return elapsed, processor.events_applied


def kombu_decode(raw: bytes) -> list[dict]:
    """What kombu's Redis transport and ``Message.decode`` do to a payload."""
    envelope = kombu_loads(raw)
    body = kombu_loads(base64.b64decode(envelope["body"]))
    return body if isinstance(body, list) else [body]


def receiver(state: State):
    app = Celery("bench", broker="memory://")
    return app.events.Receiver(app.connection_for_read(), handlers={"*": state.event})


def celery_state_seconds(raws: list[bytes]) -> float:
    state = State()
    # The receiver's stamping (local_received, adjusted timestamp) happens before timing here.
    prepare = receiver(state).event_from_message
    events = [prepare(body)[1] for raw in raws for body in kombu_decode(raw)]
    gc.collect()
    start = time.process_time()
    for event in events:
        state.event(event)
    return time.process_time() - start


def celery_full_seconds(raws: list[bytes]) -> float:
    state = State()
    event_from_message = receiver(state).event_from_message
    gc.collect()
    start = time.process_time()
    for raw in raws:
        for body in kombu_decode(raw):
            type_, event = event_from_message(body)
            state.event(event)
    return time.process_time() - start


def measure(n_events: int = 200_000) -> CostReport:
    raws, total = recorded(n_events)
    exporter_s, applied = exporter_seconds(raws)
    if applied != total:
        raise AssertionError(f"exporter applied {applied} of {total} events")
    return CostReport(
        events=total,
        exporter_us=1e6 * exporter_s / total,
        celery_state_us=1e6 * celery_state_seconds(raws) / total,
        celery_full_us=1e6 * celery_full_seconds(raws) / total,
    )
