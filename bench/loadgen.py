"""Realistic Celery event load, published to Redis at a fixed rate.

Every message is built from a real captured one (tests/fixtures/celery-events): the envelope,
its property order and each event's field order are the captured ones, only the values change.
So the exporter, Celery's EventReceiver and a bare subscriber all see what real workers send:

- ``task-sent`` travels alone on ``task.sent`` from the client that called ``apply_async``;
- the worker's task events (received, started, succeeded/failed) travel batched on
  ``task.multi`` — the batch sizes follow what a real prefork worker produced here under load
  (measured with ``-c 4`` and 5,000 ``add`` tasks: 1:8 %, 2:24 %, 3:65 %, 4:3 %);
- workers send ``worker-online`` once and ``worker-heartbeat`` every 2 s.

Messages are pre-encoded as Redis PUBLISH commands, and the publisher runs with
``CLIENT REPLY OFF``, so the generator spends almost no CPU while the consumer is measured.
"""
from __future__ import annotations

import argparse
import base64
import json
import random
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "celery-events"

# task.multi batch sizes seen from a real prefork worker (-c 4) under load, with their weights.
MEASURED_BATCH_SIZES = {1: 0.08, 2: 0.24, 3: 0.65, 4: 0.03}


@dataclass(frozen=True)
class LoadShape:
    """What the simulated cluster looks like."""

    workers: int = 10
    task_names: int = 20
    queues: int = 3
    failure_ratio: float = 0.02
    batch_sizes: dict[int, float] = field(default_factory=lambda: dict(MEASURED_BATCH_SIZES))
    db: int = 0
    exchange: str = "celeryev"
    heartbeat_every: float = 2.0


@dataclass(frozen=True)
class Message:
    channel: str
    data: str
    events: int


class Templates:
    """The first captured message of each kind: envelopes by routing key, events by type."""

    def __init__(self, capture: Path = FIXTURES / "prefork.jsonl") -> None:
        self.envelopes: dict[str, dict] = {}
        self.events: dict[str, dict] = {}
        self._parts: dict[str, tuple[str, str, tuple[str, str]]] = {}
        for line in capture.read_text().splitlines():
            envelope = json.loads(json.loads(line)["data"])
            routing_key = envelope["properties"]["delivery_info"]["routing_key"]
            self.envelopes.setdefault(routing_key, envelope)
            body = json.loads(base64.b64decode(envelope["body"]))
            for event in body if isinstance(body, list) else [body]:
                self.events.setdefault(event["type"], event)
        for routing_key in ("task.sent", "task.multi", "worker.online", "worker.heartbeat"):
            if routing_key not in self.envelopes:
                raise ValueError(f"{capture}: no captured {routing_key!r} message to use as template")

    def event(self, type_: str, **values: object) -> dict:
        event = dict(self.events[type_])
        unknown = values.keys() - event.keys()
        if unknown:
            raise KeyError(f"{type_} events have no field(s) {sorted(unknown)}")
        event.update(values)
        return event

    def message(self, routing_key: str, hostname: str, body: object) -> str:
        """The captured envelope of ``routing_key`` carrying ``body``, serialised as kombu does."""
        head, middle, tail = self._envelope_parts(routing_key)
        encoded = base64.b64encode(json.dumps(body).encode()).decode()
        return f"{head}{encoded}{middle}{json.dumps(hostname)}{tail[0]}{uuid.uuid4()}{tail[1]}"

    def _envelope_parts(self, routing_key: str) -> tuple[str, str, tuple[str, str]]:
        """The envelope split around its three variable values (body, hostname, delivery tag)."""
        parts = self._parts.get(routing_key)
        if parts is None:
            envelope = json.loads(json.dumps(self.envelopes[routing_key]))
            envelope["body"] = "\x00BODY\x00"
            envelope["headers"]["hostname"] = "\x00HOST\x00"
            envelope["properties"]["delivery_tag"] = "\x00TAG\x00"
            text = json.dumps(envelope)
            head, rest = text.split('"\\u0000BODY\\u0000"')
            head += '"'
            middle, rest = rest.split('"\\u0000HOST\\u0000"')
            middle = '"' + middle
            before_tag, after_tag = rest.split("\\u0000TAG\\u0000")
            parts = self._parts[routing_key] = (head, middle, (before_tag, after_tag))
        return parts


class EventStream:
    """Generates the message stream of ``n_tasks`` tasks flowing through a simulated cluster.

    Per worker, a task is received, then started while the next one is received, then finished
    while the one after is started — the order a busy worker reports them in. Every task id is
    new, so a consumer's memory cannot hide behind repeated ids.
    """

    def __init__(self, shape: LoadShape, *, seed: int = 1, start: float | None = None,
                 rate: float = 10_000.0, templates: Templates | None = None) -> None:
        self.shape = shape
        self.templates = templates or Templates()
        self.random = random.Random(seed)
        self.clock = start if start is not None else time.time()
        self.tick = 1.0 / rate
        self.prefix = f"/{shape.db}.{shape.exchange}/"
        self.workers = [f"celery@bench-{i:03d}" for i in range(shape.workers)]
        self.names = [f"bench.task_{i:03d}" for i in range(shape.task_names)]
        self.queues = [f"queue_{i}" for i in range(shape.queues)]
        self.client = "gen4242@bench-client"
        sizes, weights = zip(*sorted(shape.batch_sizes.items()))
        self._sizes, self._weights = list(sizes), list(weights)
        self._pending: dict[str, list[dict]] = {w: [] for w in self.workers}
        self._batch_target = {w: self._draw_batch() for w in self.workers}
        self._received: dict[str, list[str]] = {w: [] for w in self.workers}
        self._started: dict[str, list[str]] = {w: [] for w in self.workers}
        self._next_heartbeat = self.clock

    def _draw_batch(self) -> int:
        return self.random.choices(self._sizes, self._weights)[0]

    def _lone(self, routing_key: str, hostname: str, event: dict) -> Message:
        data = self.templates.message(routing_key, hostname, event)
        return Message(self.prefix + routing_key, data, 1)

    def _worker_event(self, worker: str, event: dict) -> Iterator[Message]:
        pending = self._pending[worker]
        pending.append(event)
        if len(pending) >= self._batch_target[worker]:
            yield from self._flush(worker)

    def _flush(self, worker: str) -> Iterator[Message]:
        pending = self._pending[worker]
        if pending:
            data = self.templates.message("task.multi", worker, pending)
            yield Message(self.prefix + "task.multi", data, len(pending))
            self._pending[worker] = []
            self._batch_target[worker] = self._draw_batch()

    def _heartbeats(self, type_: str) -> Iterator[Message]:
        routing_key = type_.replace("-", ".")
        for pid, worker in enumerate(self.workers, start=1000):
            event = self.templates.event(type_, hostname=worker, pid=pid, freq=self.shape.heartbeat_every,
                                         timestamp=self.clock)
            yield self._lone(routing_key, worker, event)

    def messages(self, n_tasks: int) -> Iterator[Message]:
        t = self.templates
        yield from self._heartbeats("worker-online")
        self._next_heartbeat = self.clock + self.shape.heartbeat_every
        for i in range(n_tasks):
            worker = self.workers[i % len(self.workers)]
            # Round-robin over workers, then names: after workers × names tasks every pair exists.
            name = self.names[(i // len(self.workers)) % len(self.names)]
            queue = self.queues[self.random.randrange(len(self.queues))]
            task_id = str(uuid.uuid4())
            self.clock += self.tick
            yield self._lone("task.sent", self.client, t.event(
                "task-sent", hostname=self.client, uuid=task_id, root_id=task_id, name=name,
                queue=queue, routing_key=queue, clock=i + 1, timestamp=self.clock))
            yield from self._worker_event(worker, t.event(
                "task-received", hostname=worker, uuid=task_id, root_id=task_id, name=name,
                timestamp=self.clock))
            yield from self._advance(worker)
            self._received[worker].append(task_id)
            if self.clock >= self._next_heartbeat:
                yield from self._heartbeats("worker-heartbeat")
                self._next_heartbeat += self.shape.heartbeat_every
        for worker in self.workers:
            yield from self._advance(worker)
            yield from self._advance(worker)
            yield from self._flush(worker)

    def _advance(self, worker: str) -> Iterator[Message]:
        """Finish the oldest started task, start the oldest received one."""
        t = self.templates
        if self._started[worker]:
            task_id = self._started[worker].pop(0)
            if self.random.random() < self.shape.failure_ratio:
                event = t.event("task-failed", hostname=worker, uuid=task_id, timestamp=self.clock,
                                exception="ValueError('bench failure')", traceback="Traceback ...")
            else:
                runtime = round(self.random.lognormvariate(-4.0, 1.0), 6)
                event = t.event("task-succeeded", hostname=worker, uuid=task_id, timestamp=self.clock,
                                runtime=runtime, result="None")
            yield from self._worker_event(worker, event)
        if self._received[worker]:
            task_id = self._received[worker].pop(0)
            self._started[worker].append(task_id)
            yield from self._worker_event(worker, t.event(
                "task-started", hostname=worker, uuid=task_id, timestamp=self.clock))


def resp_publish(channel: str, data: str) -> bytes:
    """A PUBLISH command in the Redis protocol, ready to write to the socket."""
    c, d = channel.encode(), data.encode()
    return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(c), c, len(d), d)


@dataclass
class PublishReport:
    messages: int
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _connect(redis_url: str) -> socket.socket:
    url = urlparse(redis_url)
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if url.password:
        sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(url.password), url.password.encode()))
        if not sock.recv(64).startswith(b"+OK"):
            raise ConnectionError(f"AUTH refused by {url.hostname}:{url.port}")
    return sock


def publish(redis_url: str, commands: list[bytes], events: list[int], rate: float,
            tick: float = 0.005) -> PublishReport:
    """Write pre-encoded PUBLISH commands at ``rate`` events per second.

    Replies are switched off, so this process only copies bytes; a final PING (with replies on
    again) returns once Redis has processed every PUBLISH before it.
    """
    sock = _connect(redis_url)
    sock.sendall(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n")
    sent_events = 0
    index = 0
    total = len(commands)
    start = time.perf_counter()
    while index < total:
        due = rate * (time.perf_counter() - start)
        end = index
        batch_events = 0
        while end < total and sent_events + batch_events < due:
            batch_events += events[end]
            end += 1
        if end > index:
            sock.sendall(b"".join(commands[index:end]))
            sent_events += batch_events
            index = end
        else:
            time.sleep(tick)
    sock.sendall(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$2\r\nON\r\n*1\r\n$4\r\nPING\r\n")
    reply = b""
    while b"PONG" not in reply:
        chunk = sock.recv(64)
        if not chunk:
            raise ConnectionError("Redis closed the connection before answering PING")
        reply += chunk
    elapsed = time.perf_counter() - start
    sock.close()
    return PublishReport(messages=total, events=sent_events, seconds=elapsed)


def build(shape: LoadShape, events_wanted: int, rate: float, seed: int = 1) -> tuple[list[Message], int]:
    """About ``events_wanted`` events (each task makes four), as messages in publishing order."""
    stream = EventStream(shape, seed=seed, rate=rate / 4)
    messages = list(stream.messages(max(1, events_wanted // 4)))
    return messages, sum(m.events for m in messages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rate", type=float, default=10_000, help="events per second (default 10000)")
    parser.add_argument("--duration", type=float, default=10, help="seconds of load (default 10)")
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--task-names", type=int, default=20)
    parser.add_argument("--queues", type=int, default=3)
    parser.add_argument("--dump", type=Path, help="write the messages as capture-style JSON lines instead")
    args = parser.parse_args(argv)
    db = int(urlparse(args.redis_url).path.lstrip("/") or 0)
    shape = LoadShape(workers=args.workers, task_names=args.task_names, queues=args.queues, db=db)
    messages, n_events = build(shape, int(args.rate * args.duration), args.rate)
    if args.dump:
        with args.dump.open("w") as out:
            for m in messages:
                out.write(json.dumps({"channel": m.channel, "data": m.data}) + "\n")
        print(f"wrote {len(messages)} messages ({n_events} events) to {args.dump}")
        return 0
    report = publish(args.redis_url, [resp_publish(m.channel, m.data) for m in messages],
                     [m.events for m in messages], args.rate)
    print(f"published {report.events} events in {report.messages} messages over {report.seconds:.2f}s "
          f"({report.rate:,.0f} events/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
