"""Wires the exporter together: state, the event consumer thread, poller threads, HTTP.

Data flows one way: broker -> event source / pollers -> aggregates and poll results -> snapshot ->
rendered text -> HTTP.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from aiohttp import web
from celery import Celery
from kombu import Connection

from .aggregates import GENERIC_HOSTNAME, Aggregates
from .event_clock import EventClock
from .events_kombu import KombuEventSession
from .events_redis import RedisEventSession, RedisTarget, is_redis_url
from .housekeeping import Housekeeping
from .inspection import WorkerInspection
from .liveness import Liveness
from .periodic import Poller, run_periodically
from .poll_results import PollResults
from .processor import EventProcessor
from .queue_depth import KombuQueueDepth, RedisQueueDepth
from .reconnect import run_with_reconnect
from .render import Renderer
from .server import make_app
from .settings import Settings
from .snapshot import take_snapshot

log = logging.getLogger(__name__)

EVENTS_SOURCE = "events"
HOUSEKEEPING_INTERVAL = 1.0


class Exporter:
    """Everything but the HTTP server; ``start`` launches the threads, ``stop`` ends them.

    Constructing it connects to nothing, so without ``start`` it is the in-process pipeline the
    benchmark drives: ``processor.feed(raw)`` / ``feed_many`` with Redis pub/sub payloads,
    ``processor.events_applied`` / ``processor.errors`` to read back, ``render_metrics()``.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self.aggregates = Aggregates(
            settings.runtime_buckets, settings.queue_wait_buckets,
            task_allow=settings.task_allow, task_deny=settings.task_deny,
            max_series=settings.max_series, max_exception_labels=settings.max_exception_labels,
            max_tasks_in_flight=settings.max_tasks_in_flight,
            sent_hostname=GENERIC_HOSTNAME if settings.generic_hostname_task_sent_metric else None,
        )
        self.clock = EventClock()
        self.processor = EventProcessor(self.aggregates, settings.max_message_bytes, self.clock)
        self.polls = PollResults()
        self.liveness = Liveness(settings.heartbeat_timeout, settings.inspect_interval,
                                 settings.inspect_timeout, settings.purge_after, self.clock)
        transport_options = {"global_keyprefix": settings.redis_key_prefix} if settings.redis_key_prefix else {}
        self.app = Celery("autopilot-exporter", broker=settings.broker_url, set_as_current=False)
        self.app.conf.broker_transport_options = transport_options
        self.app.conf.broker_connection_retry_on_startup = False

        redis = is_redis_url(settings.broker_url)
        if redis:
            self.event_session: Callable[[Callable[[], None]], None] = RedisEventSession(
                RedisTarget.from_url(settings.broker_url), self.processor, settings.events_exchange,
                settings.redis_key_prefix, settings.broker_heartbeat, self.stop_event)
            queue_depth: Poller = RedisQueueDepth(settings.broker_url, settings.redis_key_prefix,
                                                  self.polls, settings.queues)
        else:
            self.event_session = KombuEventSession(settings.broker_url, transport_options, self.processor,
                                                   settings.events_exchange, settings.broker_heartbeat,
                                                   self.stop_event)
            queue_depth = KombuQueueDepth(settings.broker_url, transport_options, self.polls, settings.queues)
        inspection = WorkerInspection(self.app, self.aggregates, self.polls, self.liveness,
                                      settings.inspect_timeout, settings.discovery_interval,
                                      settings.enable_events)
        self.pollers: list[tuple[Poller, float, PollResults | None]] = [
            (inspection, settings.inspect_interval, self.polls),
            (queue_depth, settings.queue_interval, self.polls),
            (Housekeeping(self.aggregates, self.polls, self.liveness), HOUSEKEEPING_INTERVAL, None),
        ]
        self.threads: list[threading.Thread] = []
        self.renderer = Renderer()

    def start(self) -> None:
        self.threads.append(threading.Thread(
            target=run_with_reconnect, name="events", daemon=True,
            args=(EVENTS_SOURCE, self.event_session, self.polls, self.clock, self.stop_event,
                  self.settings.reconnect_max_delay)))
        for poller, interval, polls in self.pollers:
            self.threads.append(threading.Thread(
                target=run_periodically, name=poller.name, daemon=True,
                args=(poller, interval, polls, self.stop_event)))
        for thread in self.threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)

    def render_metrics(self) -> str:
        return self.renderer.render(take_snapshot(self.aggregates, self.processor, self.polls, self.liveness,
                                    self.settings.queues))

    def broker_connected(self) -> bool:
        return self.polls.broker_connected

    def web_app(self) -> web.Application:
        display = Connection(self.settings.broker_url).as_uri()
        return make_app(self.render_metrics, self.broker_connected, display)


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM."""
    exporter = Exporter(settings)
    exporter.start()
    log.info("serving metrics on http://%s:%d/metrics", settings.host, settings.port)
    try:
        web.run_app(exporter.web_app(), host=settings.host, port=settings.port, print=None,
                    access_log=None)
    finally:
        exporter.stop()
