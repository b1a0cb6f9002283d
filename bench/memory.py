"""Resident memory of the exporter's aggregates after 100k and 1M events, all task ids distinct.

Runs in a fresh subprocess (``python -m bench.memory``) so that nothing else the harness
allocated counts. Events stream from the generator straight into ``EventProcessor.feed_many``;
the generator holds only a few tasks per worker at a time, so the growth measured is the
exporter's. Celery's ``State`` gets the same stream in a second subprocess for comparison.
"""
from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
from collections.abc import Iterator

import psutil

from bench.loadgen import EventStream, LoadShape

CHECKPOINTS = (100_000, 1_000_000)
CHUNK = 64


def chunks(n_events: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for message in EventStream(LoadShape(), rate=40_000).messages(n_events // 4 + 1):
        chunk.append(message.data.encode())
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def run_exporter(checkpoints: tuple[int, ...]) -> dict[int, int]:
    from exporter.aggregates import Aggregates
    from exporter.processor import EventProcessor
    from exporter.settings import DEFAULT_QUEUE_WAIT_BUCKETS, DEFAULT_RUNTIME_BUCKETS

    processor = EventProcessor(Aggregates(DEFAULT_RUNTIME_BUCKETS, DEFAULT_QUEUE_WAIT_BUCKETS))
    return _stream(checkpoints, processor.feed_many, lambda: processor.events_applied)


def run_celery_state(checkpoints: tuple[int, ...]) -> dict[int, int]:
    from bench.cost import kombu_decode, receiver
    from celery.events.state import State

    state = State()
    event_from_message = receiver(state).event_from_message
    seen = 0

    def feed(raws: list[bytes]) -> None:
        nonlocal seen
        for raw in raws:
            for body in kombu_decode(raw):
                state.event(event_from_message(body)[1])
                seen += 1
    return _stream(checkpoints, feed, lambda: seen)


def _stream(checkpoints, feed, applied) -> dict[int, int]:
    results = {0: rss()}
    pending = list(checkpoints)
    for chunk in chunks(max(checkpoints)):
        feed(chunk)
        if pending and applied() >= pending[0]:
            results[pending.pop(0)] = rss()
    return results


def measure(consumer: str) -> dict[int, int]:
    """RSS (bytes) at 0 and at each checkpoint, measured in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-m", "bench.memory", consumer],
                         capture_output=True, text=True, check=True)
    return {int(k): v for k, v in json.loads(out.stdout).items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("consumer", choices=["exporter", "celery-state"])
    args = parser.parse_args()
    run = run_exporter if args.consumer == "exporter" else run_celery_state
    print(json.dumps(run(CHECKPOINTS)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
