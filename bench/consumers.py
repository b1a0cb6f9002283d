"""Baseline event consumers, run as subprocesses on the same load as the exporter.

- ``redis-py``: a bare redis-py pub/sub subscriber that only counts messages: the floor of what
  reading Redis costs in Python, with no decoding at all.
- ``celery-state``: Celery's own ``EventReceiver`` feeding ``State.event`` — what Flower and most
  hand-written monitors do.

Each writes ``<events> <messages>`` to its progress file a few times a second (the bare
subscriber does not decode, so it reports messages only and events as -1), so the harness can
tell when it has drained and how much it lost.
"""
from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlparse


class Progress:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.events = 0
        self.messages = 0
        thread = threading.Thread(target=self._write_forever, daemon=True)
        thread.start()

    def _write_forever(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        while True:
            tmp.write_text(f"{self.events} {self.messages}\n")
            os.replace(tmp, self.path)
            time.sleep(0.1)


def run_redis_py(redis_url: str, exchange: str, progress: Progress) -> None:
    import redis

    db = int(urlparse(redis_url).path.lstrip("/") or 0)
    pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(f"/{db}.{exchange}/*")
    progress.events = -1
    for _message in pubsub.listen():
        progress.messages += 1


def run_celery_state(redis_url: str, exchange: str, progress: Progress) -> None:
    from celery import Celery

    app = Celery("bench", broker=redis_url)
    app.conf.event_exchange = exchange
    state = app.events.State()

    def on_event(event: dict) -> None:
        state.event(event)
        progress.events += 1

    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": on_event})
        receiver.capture(limit=None, timeout=None, wakeup=False)


CONSUMERS = {"redis-py": run_redis_py, "celery-state": run_celery_state}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one baseline event consumer.")
    parser.add_argument("consumer", choices=sorted(CONSUMERS))
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--exchange", default="celeryev")
    parser.add_argument("--progress", type=Path, required=True)
    args = parser.parse_args(argv)
    CONSUMERS[args.consumer](args.redis_url, args.exchange, Progress(args.progress))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
