"""Wires the exporter together: state, the event consumer thread, poller threads, HTTP.

Data flows one way: broker -> event source / pollers -> aggregates and poll results -> snapshot ->
rendered text -> HTTP.
"""
from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web
from celery import Celery

from .aggregates import GENERIC_HOSTNAME, Aggregates
from .event_clock import EventClock
from .events_kombu import KombuEventSession
from .events_redis import RedisEventSession
from .housekeeping import Housekeeping
from .inspection import WorkerInspection
from .liveness import Liveness
from .periodic import Poller, run_periodically
from .poll_results import PollResults
from .processor import EventProcessor
from .queue_depth import KombuQueueDepth, RedisQueueDepth
from .reconnect import run_with_reconnect
from .redis_target import RedisTarget, is_redis_url, split_urls
from .render import Renderer
from .server import make_app
from .settings import Settings
from .snapshot import take_snapshot
from .web_config import WebConfig, server_ssl_context

log = logging.getLogger(__name__)

EVENTS_SOURCE = "events"
HOUSEKEEPING_INTERVAL = 1.0
# Queue depths older than this many polling intervals are not shown.
QUEUE_DEPTH_MAX_AGE_INTERVALS = 3
# kombu's Redis transport waits forever on a connection that died without closing; the
# exporter's pollers must not (kombu recommends setting these).
REDIS_SOCKET_TIMEOUTS = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:**@{hostinfo}"))


class StartupError(Exception):
    """The exporter cannot start with this configuration: the message says what and why."""


def celery_app(settings: Settings) -> Celery:
    """The exporter's own Celery app: the user's connection settings, and the exporter's needs."""
    app = Celery("autopilot-exporter", set_as_current=False)
    app.conf.update(settings.celery_config)
    app.conf.broker_url = settings.broker_url
    options = dict(app.conf.broker_transport_options or {})
    if settings.redis_key_prefix:
        options["global_keyprefix"] = settings.redis_key_prefix
    for name, seconds in REDIS_SOCKET_TIMEOUTS.items():
        options.setdefault(name, seconds)
    app.conf.broker_transport_options = options
    app.conf.control_exchange = settings.control_exchange
    app.conf.broker_connection_retry_on_startup = False
    return app


class Exporter:
    """Everything but the HTTP server; ``start`` launches the threads, ``stop`` ends them.

    Constructing it connects to nothing, so without ``start`` it is the in-process pipeline the
    benchmark drives: ``processor.feed(raw)`` / ``feed_many`` with Redis pub/sub payloads,
    ``processor.events_applied`` / ``processor.errors`` to read back, ``render_metrics()``.
    Raises StartupError for a broker configuration it cannot use.
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
        self.app = celery_app(settings)

        queue_max_age = QUEUE_DEPTH_MAX_AGE_INTERVALS * settings.queue_interval
        if is_redis_url(settings.broker_url):
            try:
                targets = RedisTarget.all_from_url(settings.broker_url, self.app.conf.broker_use_ssl)
            except ValueError as exc:
                raise StartupError(f"broker URL {self._display()}: {exc}") from None
            self.event_session: Callable[[Callable[[], None]], None] = RedisEventSession(
                targets, self.processor, settings.events_exchange, settings.redis_key_prefix,
                settings.broker_heartbeat, self.stop_event)
            queue_depth: Poller = RedisQueueDepth(targets, settings.redis_key_prefix, self.polls,
                                                  settings.queues, queue_max_age)
        else:
            self.event_session = KombuEventSession(
                lambda heartbeat: self.app.connection_for_read(heartbeat=heartbeat), self.processor,
                settings.events_exchange, settings.broker_heartbeat, self.stop_event)
            queue_depth = KombuQueueDepth(self.app.connection_for_read, self.polls, settings.queues,
                                          queue_max_age)
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

    def stop(self, timeout: float = 1.0) -> None:
        """Ask every thread to end and wait for them, ``timeout`` seconds in all (not each). They
        hold nothing worth saving, and are daemons: one stuck on a dead broker, or an inspection
        round waiting out its timeout, does not hold the process up."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def render_metrics(self) -> Iterator[bytes]:
        """Takes the snapshot now; the text is produced as the iterator is consumed."""
        return self.renderer.render(take_snapshot(self.aggregates, self.processor, self.polls, self.liveness,
                                    self.settings.queues))

    def broker_connected(self) -> bool:
        return self.polls.broker_connected

    def _display(self) -> str:
        return ";".join(_without_password(url) for url in split_urls(self.settings.broker_url))

    def web_app(self) -> web.Application:
        return make_app(self.render_metrics, self.broker_connected, self._display(), self.settings.web_config)


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; StartupError when the configuration or the port is unusable."""
    web_config = settings.web_config or WebConfig(source="")
    ssl_context = server_ssl_context(web_config.tls, web_config.source) if web_config.tls else None
    exporter = Exporter(settings)
    # Celery, kombu and aiohttp leave some 60,000 long-lived objects after import; frozen, the
    # collector stops rescanning them, and full collections (which land in scrapes) went from
    # up to 45 ms to up to 18 ms in bench/scrape.py.
    gc.collect()
    gc.freeze()
    exporter.start()
    log.info("serving metrics on %s://%s:%d/metrics%s", "https" if ssl_context else "http", settings.host,
             settings.port, " (basic auth)" if web_config.basic_auth_users else "")
    try:
        web.run_app(exporter.web_app(), host=settings.host, port=settings.port, ssl_context=ssl_context,
                    print=None, access_log=None)
    except OSError as exc:
        raise StartupError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from None
    finally:
        exporter.stop()
