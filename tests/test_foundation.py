"""The project's own plumbing: the installed entry points exist and run."""
from __future__ import annotations

import subprocess
import sys

from celery import Celery

from tests.support.polling import wait_for


def test_worker_fixture_runs_a_real_task(worker_factory, broker_url):
    worker = worker_factory("w1@foundation", concurrency=2)
    app = Celery("t", broker=broker_url)
    stats = app.control.inspect(destination=[worker.name], timeout=2).stats()
    assert stats[worker.name]["pool"]["max-concurrency"] == 2
    app.send_task("demo.add", args=(1, 2))
    wait_for(lambda: "demo.add" in worker.log_text() and "succeeded" in worker.log_text(),
             what="demo.add to succeed in the worker log")
