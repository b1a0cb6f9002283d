"""Every query of the Grafana dashboard returns data from the real services.

A real prefork worker runs real tasks (successes, failures, a retry, a rejection, a revoked
task); the real exporter turns their events into metrics; the real actuator acts on a real
CeleryTaskFailureRatioHigh that Prometheus fires and Alertmanager posts, and on one operator
call to its Flower-style API; a real Prometheus scrapes both every second. Then every panel
target, annotation and variable query of grafana/dashboards/celery-autopilot.json, with
Grafana's variables filled in as a user would pick them, must return at least one real number.
"""
from __future__ import annotations

import math
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery

from demo.stack import Autopilot, StackSettings, autopilot
from tests.support.dashboard import expressions, load_dashboard, substitute
from tests.support.polling import Timeout, wait_for

pytestmark = pytest.mark.e2e

DASHBOARD = load_dashboard()
VARIABLES = {variable["name"] for variable in DASHBOARD["templating"]["list"]}
CHOSEN = {"job": "celery-exporter", "queue": "celery", "task": ".*", "hostname": ".*"}
WORKER = "dashboard@e2e"
# The dashboard is under test, not the shipped rules: one rule the actuator can act on.
RULES = """\
version: 1
rules:
  - name: throttle-failing-task
    match: {alertname: CeleryTaskFailureRatioHigh}
    actions:
      - {command: rate_limit, workers: all, task: "{{ labels.name }}", rate_limit: 10/m}
"""
# The dashboard needs an action of the rule whatever its outcome (on a loaded machine a worker may
# answer the rate limit late: "failed", which Alertmanager's next send would retry minutes later).
THROTTLED = {"rule": "throttle-failing-task"}


def send_every_kind_of_task(app: Celery, failures: int) -> None:
    """One task ending in each state the throughput panel draws, and ``failures`` failures."""
    for _ in range(failures):
        app.send_task("demo.fail")
    app.send_task("demo.add", (1, 2))
    app.send_task("demo.sleep", (0.3,))
    app.send_task("demo.retry", (1,))
    app.send_task("demo.reject")
    revoked = str(uuid.uuid4())
    app.control.revoke(revoked)
    app.send_task("demo.add", (2, 3), task_id=revoked)


def operator_rate_limit(loop: Autopilot) -> None:
    request = urllib.request.Request(
        f"{loop.actuator.url}/api/task/rate-limit/demo.add?ratelimit=100/s", data=b"", method="POST",
        headers={"Authorization": f"Bearer {loop.token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def scraped(loop: Autopilot, expr: str) -> float:
    """The value Prometheus has for ``expr`` (one series), or NaN while it has none."""
    result = loop.prometheus.query(expr)
    return float(result[0]["value"][1]) if result else math.nan


@pytest.fixture(scope="module")
def loop(module_broker_url, module_worker_factory, tmp_path_factory) -> Iterator[Autopilot]:
    module_worker_factory(WORKER, concurrency=2)
    workdir = tmp_path_factory.mktemp("dashboard-data")
    rules = workdir / "rules.yml"
    rules.write_text(RULES)
    settings = StackSettings(broker_url=module_broker_url, workdir=workdir, rules=rules,
                             thresholds={"task_failure_min_finished": 3},
                             for_durations={"CeleryTaskFailureRatioHigh": "1s"})
    app = Celery("dashboard-data", broker=module_broker_url, set_as_current=False)
    app.conf.task_send_sent_event = True
    with autopilot(settings) as running:
        # A worker whose queue the exporter does not know yet labels a task it receives before the
        # client's task-sent arrives with queue_name="unknown", and the next wave's failures under
        # "celery" would start a new series (seen at 5, increased by nothing): the ratio alert
        # would not fire. Inspection must have found the queue first.
        wait_for(lambda: scraped(running, f'celery_worker_consumer{{hostname="{WORKER}",queue_name="celery"}}') == 1,
                 timeout=30, interval=0.2, what="Prometheus to see which queue the worker consumes")
        # Counters must grow between two scrapes for rate() and increase() to see them: a first
        # wave creates every series, a second one, once Prometheus has them, makes them grow.
        send_every_kind_of_task(app, failures=1)
        wait_for(lambda: scraped(running, 'count(count by (__name__) ({__name__=~"celery_task_.+_total"}))') == 8,
                 timeout=30, interval=0.2, what="Prometheus to scrape every task counter")
        # demo.fail's own failure series must be scraped at 1 before the next five: demo.reject's
        # failure can complete the eight families first, and a series first scraped at 6 has
        # increased by nothing, so its failure ratio would never fire.
        wait_for(lambda: scraped(running, 'sum(celery_task_failed_total{name="demo.fail"})') == 1,
                 timeout=30, interval=0.2, what="Prometheus to scrape demo.fail's first failure")
        send_every_kind_of_task(app, failures=5)
        try:
            wait_for(lambda: running.actions(rule=THROTTLED["rule"]), timeout=30, interval=0.2,
                     what="the actuator to act on CeleryTaskFailureRatioHigh for demo.fail")
        except Timeout as exc:
            rule = [r for g in running.prometheus.rule_groups() for r in g["rules"]
                    if r.get("name") == "CeleryTaskFailureRatioHigh"]
            raise Timeout(f"{exc}; audit log {running.actions()!r}; alerts {running.prometheus.alerts()!r}; "
                          f"rule {rule!r}; failed {running.prometheus.query('celery_task_failed_total')!r}; "
                          f"finished {running.prometheus.query('celery_task_succeeded_total')!r}") from None
        # One operator action is enough: the actuator serves its action series at zero from the
        # start, so increase() sees the very first one (the dashboard's annotation relies on it).
        operator_rate_limit(running)
        wait_for(lambda: scraped(running, 'sum(celery_actuator_actions_total{rule="api"})') == 1,
                 timeout=15, interval=0.2, what="Prometheus to scrape the operator action")
        yield running
    app.close()


@pytest.mark.parametrize("where, expr", list(expressions(DASHBOARD)), ids=[w for w, _ in expressions(DASHBOARD)])
def test_query_returns_data(loop, where, expr):
    query = substitute(expr, VARIABLES, CHOSEN)

    def numbers() -> list[float]:
        values = [float(series["value"][1]) for series in loop.prometheus.query(query)]
        return [value for value in values if not math.isnan(value)]

    wait_for(numbers, timeout=20, interval=0.25, what=f"{where}: {query!r} to return a number")


def test_the_first_action_of_each_rule_is_annotated(loop):
    """Each rule acted once (its first action ever): the annotation must still mark both."""
    (annotation,) = [a for a in DASHBOARD["annotations"]["list"] if a["name"] == "Actuator actions"]
    query = substitute(annotation["expr"], VARIABLES, CHOSEN)

    def annotated() -> set[str]:
        return {series["metric"]["rule"] for series in loop.prometheus.query(query)}
    wait_for(lambda: annotated() >= {"api", THROTTLED["rule"]}, timeout=20, interval=0.25,
             what=f"{query!r} to mark the operator's and the rule's first action")
