"""Queue depths on a real Redis: one unmeasurable queue, a failed poll, and failover."""
from __future__ import annotations

import logging

import pytest
import redis

from exporter.poll_results import PollResults, QueueDepth
from exporter.queue_depth import RedisQueueDepth
from exporter.redis_target import RedisTarget
from tests.support.ports import free_port


def poller(urls: list[str], polls: PollResults, queues: tuple[str, ...]) -> RedisQueueDepth:
    return RedisQueueDepth([RedisTarget.from_url(url) for url in urls], "", polls, queues, max_age=10)


def test_a_key_of_another_type_loses_only_its_own_queue(broker_url, redis_server, caplog):
    client = redis_server.client(int(broker_url.rsplit("/", 1)[1]))
    client.set("broken", "not a list")
    client.rpush("fine", "a", "b")
    client.rpush("fine\x06\x163", "c")
    polls = PollResults()
    depth = poller([broker_url], polls, ("fine", "broken", "empty"))
    with caplog.at_level(logging.WARNING, logger="exporter.queue_depth"):
        depth.poll()
        depth.poll()
    assert polls.queues == {"fine": QueueDepth(3), "empty": QueueDepth(0)}
    assert [r.getMessage() for r in caplog.records] == [
        "queue 'broken': cannot measure its length (WRONGTYPE Operation against a key holding the wrong "
        "kind of value); it is left out"]


def test_a_failed_poll_forgets_every_depth_and_the_next_broker_is_asked(broker_url):
    polls = PollResults()
    polls.queues = {"celery": QueueDepth(42)}
    depth = poller([f"redis://127.0.0.1:{free_port()}/0", broker_url], polls, ("celery",))
    with pytest.raises(redis.ConnectionError):
        depth.poll()
    assert polls.queues == {}
    depth.poll()  # failover: the second URL
    assert polls.queues == {"celery": QueueDepth(0)}
