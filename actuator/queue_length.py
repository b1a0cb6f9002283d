"""Queue lengths straight from the broker, for Flower's ``GET /api/queues/length``.

On Redis a queue is a list, plus one list per priority step named ``queue + "\\x06\\x16" + p``;
its length is the sum (Celery's default steps are 0, 3, 6, 9, and every step 1..9 is read so that
custom steps are counted too). On AMQP brokers a passive declare returns the message count.
"""
from __future__ import annotations

from collections.abc import Iterable

from kombu import Connection

PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = range(1, 10)


def queue_lengths(connection: Connection, queues: Iterable[str]) -> dict[str, int]:
    names = sorted(set(queues))
    if connection.transport.driver_type == "redis":
        return _redis_lengths(connection, names)
    return {name: _declared_length(connection, name) for name in names}


def _redis_lengths(connection: Connection, names: list[str]) -> dict[str, int]:
    client = connection.default_channel.client
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
        for step in PRIORITY_STEPS:
            pipe.llen(f"{name}{PRIORITY_SEPARATOR}{step}")
    counts = pipe.execute()
    per_queue = 1 + len(PRIORITY_STEPS)
    return {name: sum(counts[i * per_queue:(i + 1) * per_queue]) for i, name in enumerate(names)}


def _declared_length(connection: Connection, name: str) -> int:
    """A passive declare fails (and closes the channel) for a queue that does not exist: 0."""
    channel = connection.channel()
    try:
        return channel.queue_declare(queue=name, passive=True).message_count
    except connection.channel_errors:
        return 0
    finally:
        channel.close()
