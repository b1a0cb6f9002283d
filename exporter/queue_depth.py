"""Queue depths from the broker, for the queues named by flags and those workers consume.

Redis keeps each priority level of a queue in its own list (``queue`` + ``\\x06\\x16`` + level,
levels 0, 3, 6, 9 by default, any of 1..9 with custom ``priority_steps``), so a queue's length is
the sum of LLEN over all ten keys, in one pipeline. Other transports answer a passive
``queue_declare`` with the message and consumer counts.

A depth is only worth showing while it is fresh: a failed poll forgets every depth, and depths
older than ``max_age`` are not shown (a poll can also hang), so that an autoscaling rule never
acts on a backlog that is long gone. A queue whose keys cannot be measured (a key of another
type under its name) loses only its own depth.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import redis
from kombu import Connection

from .poll_results import PollResults, QueueDepth
from .redis_target import RedisTarget

log = logging.getLogger(__name__)

PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_LEVELS = range(1, 10)
SOCKET_TIMEOUT = 2.0


def redis_keys(queue: str) -> list[str]:
    return [queue] + [f"{queue}{PRIORITY_SEPARATOR}{level}" for level in PRIORITY_LEVELS]


class _QueueDepthPoller:
    """What both brokers share: which queues, and how results are stored or forgotten."""

    name = "queue_depth"

    def __init__(self, polls: PollResults, always: tuple[str, ...], max_age: float) -> None:
        self.polls = polls
        self.always = always
        self.max_age = max_age

    def poll(self) -> None:
        started = time.monotonic()
        try:
            depths = self.measure(self.polls.known_queues(self.always))
        except Exception:
            with self.polls.lock:
                self.polls.queues = {}
            raise
        with self.polls.lock:
            self.polls.queues = depths
            self.polls.queues_valid_until = started + self.max_age

    def measure(self, names: list[str]) -> dict[str, QueueDepth]:
        raise NotImplementedError


class RedisQueueDepth(_QueueDepthPoller):
    def __init__(self, targets: Sequence[RedisTarget], key_prefix: str, polls: PollResults,
                 always: tuple[str, ...], max_age: float) -> None:
        super().__init__(polls, always, max_age)
        self.targets = targets
        self.key_prefix = key_prefix
        self._current = 0
        self._client: redis.Redis | None = None
        self._unmeasurable: set[str] = set()

    def measure(self, names: list[str]) -> dict[str, QueueDepth]:
        if self._client is None:
            self._client = self.targets[self._current].client(SOCKET_TIMEOUT)
        pipe = self._client.pipeline(transaction=False)
        per_queue = len(PRIORITY_LEVELS) + 1
        for name in names:
            for key in redis_keys(name):
                pipe.llen(self.key_prefix + key)
        try:
            sizes = pipe.execute(raise_on_error=False)
        except redis.RedisError:
            # With several broker URLs (failover), the next poll asks the next one.
            self._client.close()
            self._client = None
            self._current = (self._current + 1) % len(self.targets)
            raise
        depths = {}
        for i, name in enumerate(names):
            queue_sizes = sizes[i * per_queue:(i + 1) * per_queue]
            errors = [size for size in queue_sizes if isinstance(size, Exception)]
            if errors:
                self._report(name, errors[0])
                continue
            self._unmeasurable.discard(name)
            depths[name] = QueueDepth(sum(queue_sizes))
        return depths

    def _report(self, queue: str, error: Exception) -> None:
        """Warn once per queue until it can be measured again."""
        if queue not in self._unmeasurable:
            self._unmeasurable.add(queue)
            log.warning("queue %r: cannot measure its length (%s); it is left out", queue, error)


class KombuQueueDepth(_QueueDepthPoller):
    def __init__(self, connect: Callable[[], Connection], polls: PollResults, always: tuple[str, ...],
                 max_age: float) -> None:
        super().__init__(polls, always, max_age)
        self.connect = connect

    def measure(self, names: list[str]) -> dict[str, QueueDepth]:
        depths = {}
        with self.connect() as conn:
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
        return depths
