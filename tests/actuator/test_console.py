"""The operator console over plain HTTP (in-process actuator, real Redis, real prefork workers):
each panel shows what the workers, the broker and the guard state really hold, and every form of
the "Act" box reaches the worker, verified by the worker's own inspection replies, and is
recorded in the audit log under the operator's name."""
from __future__ import annotations

import html
import json
import re

import bcrypt
import pytest

from actuator.roles import parse_role_map
from actuator.settings import AuthSettings
from tests.actuator.conftest import AUTH_HEADERS, USERS
from tests.actuator.payloads import alert, notification
from tests.support.inspection import autoscaler, consumed_queues, task_info
from tests.support.polling import wait_for, wait_for_async

AUTO = "auto@console"      # prefork with --autoscale 3,1, consuming "auto"
PLAIN = "w1@console"       # prefork -c 1, consuming "celery"
BACKLOG = "console-backlog"  # watched (--queues), consumed by nobody
BACKLOG_MESSAGES = 7
OPERATOR = ("olga", "olga-pw-4b7e")
PANEL_RULES = """
    manual: {cooldown: 10m, max_actions_per_hour: 5}
    limits: {max_actions_per_hour: 20}
    rules:
      - name: throttle-adds
        match: {alertname: AddsFailing}
        cooldown: 15m
        max_actions_per_hour: 3
        actions: [{command: rate_limit, workers: {name: w1@console}, task: demo.add, rate_limit: 100/m}]
      - name: never-fires
        match: {alertname: Never}
        cooldown: 5m
        max_actions_per_hour: 2
        actions: [{command: pool_grow, workers: all, n: 1}]
"""
FORM_RULES = """
    manual: {max_actions_per_hour: 10}
    rules: []
"""


@pytest.fixture(scope="module")
def workers(start_workers):
    return start_workers({"name": AUTO, "queues": ["auto"], "concurrency": 1, "extra_args": ["--autoscale", "3,1"]},
                         {"name": PLAIN, "queues": ["celery"], "concurrency": 1})


def auth() -> AuthSettings:
    hashed = bcrypt.hashpw(OPERATOR[1].encode(), bcrypt.gensalt(4))
    return AuthSettings(password_users={OPERATOR[0]: hashed}, roles=parse_role_map(f"{OPERATOR[0]}=operator"),
                        basic_users=USERS)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


async def log_in(client) -> str:
    """The operator signs in with the password form; the session's CSRF token."""
    token = csrf_of(await (await client.get("/login")).text())
    answer = await client.post("/login", data={"username": OPERATOR[0], "password": OPERATOR[1],
                                               "csrf_token": token, "next": "/"}, allow_redirects=False)
    assert answer.status == 303, await answer.text()
    return csrf_of(await (await client.get("/")).text())


async def panels(client) -> dict[str, str]:
    """Every panel as the live stream first sends it (``GET /console/events``)."""
    found: dict[str, str] = {}
    async with client.get("/console/events") as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        while len(found) < 5:
            line = (await stream.content.readline()).decode()
            if line.startswith("data: "):
                message = json.loads(line[len("data: "):])
                found[message["panel"]] = message["html"]
    return found


def text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def row(panel: str, kind: str, name: str) -> list[str] | None:
    """The text of each cell of the ``<tr class="kind" data-kind="name">`` row, None if absent."""
    found = re.search(rf'<tr class="{kind}" data-{kind}="{re.escape(html.escape(name))}">(.*?)</tr>', panel, re.S)
    return [text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", found.group(1), re.S)] if found else None


def active_tasks(inspector, worker: str) -> list:
    return (inspector.control.inspect(destination=[worker], timeout=2).active() or {}).get(worker, [])


def queue_length(inspector, queue: str) -> int:
    """Messages waiting in ``queue``, as the broker counts them (kombu's declare-ok)."""
    with inspector.connection_for_read() as connection:
        return connection.default_channel.queue_declare(queue=queue).message_count


async def test_panels_show_what_workers_broker_and_guards_really_hold(actuator_client, module_broker_url, workers,
                                                                      inspector):
    client = await actuator_client(PANEL_RULES, module_broker_url, auth=auth(), queues=(BACKLOG,),
                                   console_interval=0.5)
    for _ in range(BACKLOG_MESSAGES):
        inspector.send_task("demo.add", (1, 2), queue=BACKLOG)
    inspector.send_task("demo.sleep", (600,), queue="auto")
    running = wait_for(lambda: active_tasks(inspector, AUTO), timeout=15, what=f"{AUTO} to run demo.sleep")
    bounds = autoscaler(inspector, AUTO)
    backlog = queue_length(inspector, BACKLOG)
    assert backlog == BACKLOG_MESSAGES and "auto" in consumed_queues(inspector, AUTO)
    csrf = await log_in(client)

    async def shown():
        current = await panels(client)
        auto = row(current["workers"], "worker", AUTO)
        return current if auto and auto[5] == str(len(running)) else None
    current = await wait_for_async(shown, timeout=15, what=f"the workers panel to show {AUTO}'s active task")
    assert row(current["workers"], "worker", AUTO)[1:6] == [
        "up", f"{len(running)} prefork", f"{bounds['min']}–{bounds['max']}", "auto", str(len(running))]
    assert row(current["workers"], "worker", PLAIN)[1:6] == ["up", "1 prefork", "–", "celery", "0"]
    assert row(current["queues"], "queue", BACKLOG) == [BACKLOG, str(backlog), "none"]
    assert row(current["queues"], "queue", "auto") == ["auto", str(queue_length(inspector, "auto")), AUTO]
    assert row(current["guards"], "rule", "throttle-adds") == ["throttle-adds", "900 s", "–", "0 of 3, 3 left"]
    assert "No actions recorded yet." in current["actions"]

    # A rule acts (webhook), and the operator acts (console form): each one's guard state shows.
    fired = await client.post("/webhook", json=notification(alert({"alertname": "AddsFailing"})),
                              headers=AUTH_HEADERS)
    assert (await fired.json())["alerts"][0]["actions"][0]["outcome"] == "sent", await fired.text()
    assert "rate_limit=100/m" in task_info(inspector, PLAIN, "demo.add")
    new = {"max": bounds["max"] + 1, "min": bounds["min"] + 1}
    answer = await client.post("/console/action", data={"csrf_token": csrf, "command": "autoscale", "worker": AUTO,
                                                        "max": str(new["max"]), "min": str(new["min"])})
    assert f"autoscale max={new['max']} min={new['min']} on {AUTO}: sent" in text(await answer.text())
    wait_for(lambda: {k: autoscaler(inspector, AUTO)[k] for k in new} == new, timeout=10,
             what=f"{AUTO}'s autoscaler to report {new}")

    async def acted():
        current = await panels(client)
        auto = row(current["workers"], "worker", AUTO)
        return current if auto and auto[3] == f"{new['min']}–{new['max']}" else None
    current = await wait_for_async(acted, timeout=15, what="the workers panel to show the new autoscaler bounds")
    guards = current["guards"]
    (rule_left,) = re.findall(rf"{PLAIN}: (\d+) s left", row(guards, "rule", "throttle-adds")[2])
    (manual_left,) = re.findall(rf"{AUTO}: (\d+) s left", row(guards, "rule", "manual actions")[2])
    assert 870 < int(rule_left) <= 900 and 570 < int(manual_left) <= 600
    assert row(guards, "rule", "throttle-adds")[3] == "1 of 3, 2 left"
    assert row(guards, "rule", "never-fires") == ["never-fires", "300 s", "–", "0 of 2, 2 left"]
    assert row(guards, "rule", "manual actions")[3] == "1 of 5, 4 left"
    assert "2 of 20 actions in the last hour, 18 left" in text(guards)

    # The audit panel: newest first, with who acted and each worker's own reply.
    records = re.findall(r"<tr>\s*<td>(.*?)</tr>", current["actions"], re.S)
    newest, older = (text(record) for record in records[:2])
    replies = {r["command"]: r["workers"][0]["detail"]
               for r in (await (await client.get("/actions")).json())["actions"]}
    assert "console basic:olga" in newest and f"{AUTO}: ok" in newest and replies["autoscale"] in newest
    assert "webhook basic:admin" in older and "throttle-adds" in older and f"{PLAIN}: ok" in older
    assert replies["rate_limit"] in older
    assert replies == {"autoscale": f"autoscale now max={new['max']} min={new['min']}",
                       "rate_limit": "new rate limit set successfully"}


async def test_every_form_reaches_the_worker_and_the_audit_log(actuator_client, module_broker_url, workers, inspector):
    client = await actuator_client(FORM_RULES, module_broker_url, auth=auth())
    csrf = await log_in(client)
    queue = "console-orphans"

    async def act(command: str, **fields: str) -> str:
        answer = await client.post("/console/action", data={"csrf_token": csrf, "command": command, "worker": PLAIN,
                                                            **fields})
        assert answer.status == 200
        flash = re.search(r'<p class="flash [^"]*" id="flash">(.*?)</p>', await answer.text(), re.S)
        return text(flash.group(1))

    assert f"add_consumer queue={queue} on {PLAIN}: sent" in await act("add_consumer", queue=queue)
    wait_for(lambda: queue in consumed_queues(inspector, PLAIN), timeout=10, what=f"{PLAIN} to consume {queue}")

    async def consumers_shown():
        return row((await panels(client))["queues"], "queue", queue) == [queue, "0", PLAIN]
    await wait_for_async(consumers_shown, timeout=15, what=f"the queues panel to show {PLAIN} consuming {queue}")

    assert f"cancel_consumer queue={queue} on {PLAIN}: sent" in await act("cancel_consumer", queue=queue)
    wait_for(lambda: queue not in consumed_queues(inspector, PLAIN), timeout=10, what=f"{PLAIN} to drop {queue}")
    assert f"on {PLAIN}: sent" in await act("rate_limit", task="demo.sleep", rate_limit="30/m")
    assert "rate_limit=30/m" in task_info(inspector, PLAIN, "demo.sleep")
    assert f"on {PLAIN}: sent" in await act("time_limit", task="demo.sleep", soft="40", hard="80")
    assert task_info(inspector, PLAIN, "demo.sleep") == \
        "demo.sleep [rate_limit=30/m time_limit=80.0 soft_time_limit=40.0]"

    records = (await (await client.get("/actions", params={"source": "console"})).json())["actions"]
    given = [(r["command"], {k: v for k, v in r["arguments"].items() if v is not None}, r["outcome"], r["principal"])
             for r in reversed(records)]
    assert given == [
        ("add_consumer", {"queue": queue}, "sent", "basic:olga"),
        ("cancel_consumer", {"queue": queue}, "sent", "basic:olga"),
        ("rate_limit", {"task": "demo.sleep", "rate_limit": "30/m"}, "sent", "basic:olga"),
        ("time_limit", {"task": "demo.sleep", "soft": 40.0, "hard": 80.0}, "sent", "basic:olga")]
    assert all([(w["worker"], w["outcome"]) for w in r["workers"]] == [(PLAIN, "ok")] for r in records)
