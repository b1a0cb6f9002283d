"""Queue depths from the broker, for the queues named by flags and those workers consume.

Redis keeps each priority level of a queue in its own list (``queue`` + ``\\x06\\x16`` + level,
levels 0, 3, 6, 9 by default, any of 1..9 with custom ``priority_steps``), so a queue's length is
the sum of LLEN over all ten keys, in one pipeline. Other transports answer a passive
``queue_declare`` with the message and consumer counts.
"""
from __future__ import annotations

import redis
from kombu import Connection

from .poll_results import PollResults, QueueDepth

PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_LEVELS = range(1, 10)
SOCKET_TIMEOUT = 2.0


def redis_keys(queue: str) -> list[str]:
    return [queue] + [f"{queue}{PRIORITY_SEPARATOR}{level}" for level in PRIORITY_LEVELS]


class RedisQueueDepth:
    name = "queue_depth"

    def __init__(self, broker_url: str, key_prefix: str, polls: PollResults,
                 always: tuple[str, ...]) -> None:
        self.client = redis.Redis.from_url(broker_url, socket_timeout=SOCKET_TIMEOUT,
                                           socket_connect_timeout=SOCKET_TIMEOUT)
        self.key_prefix = key_prefix
        self.polls = polls
        self.always = always

    def poll(self) -> None:
        names = self.polls.known_queues(self.always)
        pipe = self.client.pipeline(transaction=False)
        per_queue = len(PRIORITY_LEVELS) + 1
        for name in names:
            for key in redis_keys(name):
                pipe.llen(self.key_prefix + key)
        sizes = pipe.execute()
        depths = {name: QueueDepth(sum(sizes[i * per_queue:(i + 1) * per_queue]))
                  for i, name in enumerate(names)}
        with self.polls.lock:
            self.polls.queues = depths


class KombuQueueDepth:
    name = "queue_depth"

    def __init__(self, broker_url: str, transport_options: dict, polls: PollResults,
                 always: tuple[str, ...]) -> None:
        self.broker_url = broker_url
        self.transport_options = transport_options
        self.polls = polls
        self.always = always

    def poll(self) -> None:
        names = self.polls.known_queues(self.always)
        depths = {}
        with Connection(self.broker_url, transport_options=self.transport_options,
                        connect_timeout=SOCKET_TIMEOUT) as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            for name in names:
                try:
                    _, messages, consumers = channel.queue_declare(queue=name, passive=True)
                except conn.channel_errors:
                    # The queue does not exist (yet): nothing waits in it and nobody consumes it.
                    # The broker closed the channel with the error, so take a fresh one.
                    messages, consumers = 0, 0
                    channel = conn.channel()
                depths[name] = QueueDepth(messages, consumers)
        with self.polls.lock:
            self.polls.queues = depths
