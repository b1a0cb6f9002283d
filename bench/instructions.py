"""Instructions per event, counted by callgrind: a cost figure that does not move with load.

Timings on a shared 2-core machine move by tens of percent; instruction counts do not (same
binary, same input → same count). Each path runs twice under ``valgrind --tool=callgrind``: once
preparing its input only, once preparing and processing it; the difference divided by the
events is the cost per event of the processing alone.

    .venv/bin/python -m bench.instructions            # exporter and Celery State.event, 20k events
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile

from bench.cost import CHUNK, kombu_decode, receiver, recorded

PATHS = ("exporter", "celery-state")


def _prepare(path: str, n_events: int):
    raws, total = recorded(n_events)
    if path == "exporter":
        from exporter.aggregates import Aggregates
        from exporter.processor import EventProcessor
        from exporter.settings import DEFAULT_QUEUE_WAIT_BUCKETS, DEFAULT_RUNTIME_BUCKETS

        processor = EventProcessor(Aggregates(DEFAULT_RUNTIME_BUCKETS, DEFAULT_QUEUE_WAIT_BUCKETS))
        chunks = [raws[i:i + CHUNK] for i in range(0, len(raws), CHUNK)]

        def run() -> None:
            for chunk in chunks:
                processor.feed_many(chunk)
            assert processor.events_applied == total, (processor.events_applied, total)
        return run
    from celery.events.state import State

    state = State()
    stamp = receiver(state).event_from_message
    events = [stamp(body)[1] for raw in raws for body in kombu_decode(raw)]

    def run() -> None:
        for event in events:
            state.event(event)
    return run


def _count(path: str, n_events: int, process: bool) -> int:
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", sys.executable,
             "-m", "bench.instructions", "--child", path, "--events", str(n_events),
             *(["--process"] if process else [])],
            capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no total:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def per_event(path: str, n_events: int) -> float:
    _, total = recorded(n_events)
    return (_count(path, n_events, True) - _count(path, n_events, False)) / total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run = _prepare(args.child, args.events)
        if args.process:
            run()
        return 0
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install valgrind)")
    counts = {path: per_event(path, args.events) for path in PATHS}
    print(f"instructions per event ({args.events:,} recorded events, callgrind):")
    for path, count in counts.items():
        print(f"- {path}: {count:,.0f}")
    print(f"- Celery State.event / exporter decode+aggregate: {counts['celery-state'] / counts['exporter']:.1f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
