"""The HTTP contract with Alertmanager, in-process (aiohttp test server): 200/400/401/413/503, auth
schemes, the read endpoints, dry-run; a real worker where an answer depends on one."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import random
import time

import pytest

from actuator.http_contract import api_status
from actuator.outcomes import ActionReport, WorkerResult
from actuator.services import SERVICES
from actuator.settings import AuthSettings, ControlSettings
from tests.actuator.conftest import AUTH_HEADERS as HEADERS
from tests.actuator.payloads import alert, backlog, notification
from tests.actuator.test_payload import mutations
from tests.support.inspection import pool_size
from tests.support.polling import wait_for, wait_for_async
from tests.support.ports import free_port

WORKER = "w1@contract"

RULES = """
    rules:
      - name: grow
        match: {alertname: CeleryQueueBacklog}
        actions:
          - command: pool_grow
            workers: {consuming: "{{ labels.queue_name }}"}
            n: 1
      - name: rehearse-grow
        match: {alertname: Rehearsal}
        dry_run: true
        actions:
          - command: pool_grow
            workers: {consuming: "{{ labels.queue_name }}"}
            n: 4
"""


@pytest.fixture(scope="module")
def worker(start_workers):
    return start_workers({"name": WORKER, "queues": ["celery"], "concurrency": 2})[0]


async def test_fuzzed_payloads_get_400_with_a_json_error_never_500(actuator_client, module_broker_url):
    client = await actuator_client(RULES, module_broker_url)
    bodies = [json.dumps(body).encode() for body in mutations(seed=11, count=300)]
    bodies += [b"", b"{", b"\xff", b"[]", b"null", b'{"version": "4"}', b"[" * 50000, "{\"é\": 1}".encode(),
               # Past Python's 4300-digit limit, and lone surrogates wherever a string is stored.
               b'{"version": "4", "truncatedAlerts": 1' + b"0" * 5000 + b"}"]
    for mutate in (lambda b: b.update(receiver="\ud800"), lambda b: b.update(groupKey="\udfff"),
                   lambda b: b["alerts"][0].update(fingerprint="\ud800"),
                   lambda b: b["alerts"][0]["labels"].update(alertname="\ud800")):
        body = backlog("celery", 1)
        mutate(body)
        bodies.append(json.dumps(body).encode())
    statuses = {}
    for body in bodies:
        answer = await client.post("/webhook", data=body, headers=HEADERS)
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
        if answer.status == 400:
            error = await answer.json()
            assert error["error"], body
    assert set(statuses) <= {200, 400} and statuses[400] > 150
    # The service is still healthy and still handles a valid notification.
    answer = await client.post("/webhook", json=notification(alert({"alertname": "Nothing"})), headers=HEADERS)
    assert answer.status == 200 and (await answer.json())["message"] == "no rule matched"
    metrics = await (await client.get("/metrics")).text()
    assert f'celery_actuator_notifications_total{{status="invalid"}} {statuses[400]}.0' in metrics
    assert 'code="500"' not in metrics


async def test_odd_bytes_in_the_authorization_header_are_a_401(actuator_client, module_broker_url):
    """Header bytes that are not UTF-8, sent raw (no client library would): 401, never 500."""
    auth = AuthSettings(basic_users={"am": "pw"}, bearer_tokens=("tok",))
    client = await actuator_client(RULES, module_broker_url, auth=auth)
    host, port = client.server.host, client.server.port
    for header in (b"Bearer tok\xff", b"Basic \xff\xfe", b"Bearer \xe2\x82\xac", b"\xff\xff tok"):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nAuthorization: " + header
                     + b"\r\nConnection: close\r\n\r\n{}")
        status_line = (await reader.readline()).decode()
        writer.close()
        assert status_line.split(" ")[1] == "401", (header, status_line)
    # Still the same token, as bytes: the one that matches gets in.
    answer = await client.post("/webhook", json=notification(alert({"alertname": "Other"})),
                               headers={"Authorization": "Bearer tok"})
    assert answer.status == 200


async def test_an_unhandled_error_is_counted_as_a_500(actuator_client, module_broker_url):
    client = await actuator_client(RULES, module_broker_url)
    client.app[SERVICES].audit.close()  # every write to the audit log now fails
    answer = await client.post("/webhook", json=notification(alert({"alertname": "Other"})), headers=HEADERS)
    assert answer.status == 500
    metrics = await (await client.get("/metrics")).text()
    assert 'celery_actuator_http_requests_total{code="500",route="/webhook"} 1.0' in metrics


async def test_error_body_names_the_field(actuator_client, module_broker_url):
    client = await actuator_client(RULES, module_broker_url)
    body = backlog("celery", 1)
    body["alerts"][0]["labels"]["queue_name"] = 7
    answer = await client.post("/webhook", json=body, headers=HEADERS)
    assert answer.status == 400
    assert await answer.json() == {"error": "expected a string value, got a number",
                                   "field": "alerts[0].labels.queue_name"}
    rejected = await (await client.get("/actions", headers=HEADERS)).json()
    assert rejected == {"actions": []}


async def test_bodies_past_the_bound_get_413_and_are_recorded(actuator_client, module_broker_url):
    client = await actuator_client(RULES, module_broker_url, max_body_bytes=2048)
    big = json.dumps(backlog("x" * 3000, 1))
    answer = await client.post("/webhook", data=big, headers=HEADERS)
    assert answer.status == 413 and "2048" in (await answer.json())["error"]

    async def chunks():
        yield big[:1500].encode()
        yield big[1500:].encode()
    answer = await client.post("/webhook", data=chunks(), headers=HEADERS)
    assert answer.status == 413
    audit = client.app[SERVICES].audit
    recorded = [await audit.notification(i) for i in (1, 2)]
    assert [(n["outcome"], n["principal"]) for n in recorded] == [("rejected", "basic:admin")] * 2
    assert recorded[0]["error"] == (f"request body of {len(big)} bytes exceeds the limit of 2048 bytes "
                                    "(--max-body-bytes)")
    metrics = await (await client.get("/metrics")).text()
    assert 'celery_actuator_notifications_total{status="invalid"} 2.0' in metrics


async def test_broker_unreachable_is_503_and_recorded(actuator_client):
    client = await actuator_client(RULES, f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    answer = await client.post("/webhook", json=backlog("celery", 5), headers=HEADERS)
    assert answer.status == 503 and time.monotonic() - started < 5
    body = await answer.json()
    assert body["status"] == "broker_unavailable" and "unreachable" in body["error"]
    # Nothing to send means nothing a retry would change: 200 even with the broker down.
    answer = await client.post("/webhook", json=notification(alert({"alertname": "Other"})), headers=HEADERS)
    assert answer.status == 200
    records = (await (await client.get("/actions", params={"outcome": "broker_unavailable"},
                                       headers=HEADERS)).json())["actions"]
    assert [(r["rule"], r["command"]) for r in records] == [("grow", "pool_grow")]


async def test_bearer_tokens_and_challenge(actuator_client, module_broker_url):
    auth = AuthSettings(basic_users={"am": "pw"}, bearer_tokens=("tok-1", "tok-2"))
    client = await actuator_client(RULES, module_broker_url, auth=auth)
    body = notification(alert({"alertname": "Other"}))
    answer = await client.post("/webhook", json=body)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="celery-autopilot", Bearer realm="celery-autopilot"'
    assert (await client.post("/webhook", json=body, headers={"Authorization": "Bearer tok-3"})).status == 401
    answer = await client.post("/webhook", json=body, headers={"Authorization": "Bearer tok-2"})
    assert answer.status == 200
    records = (await (await client.get("/actions", headers={"Authorization": "Bearer tok-1"})).json())["actions"]
    assert records[0]["principal"] == "bearer:token#2"


async def test_open_endpoints_and_no_auth(actuator_client, module_broker_url):
    client = await actuator_client(RULES, module_broker_url)
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/metrics")).status == 200
    assert (await client.get("/rules")).status == 401
    assert (await client.get("/")).status == 401
    assert (await client.get("/no/such/page")).status == 401
    protected = await actuator_client(RULES, module_broker_url,
                                      auth=AuthSettings(basic_users={"a": "b"}, protect_metrics=True))
    assert (await protected.get("/metrics")).status == 401
    open_client = await actuator_client(RULES, module_broker_url, auth=AuthSettings(enabled=False))
    rules = await (await open_client.get("/rules")).json()
    assert [r["name"] for r in rules["rules"]] == ["grow", "rehearse-grow"]
    answer = await open_client.post("/webhook", json=notification(alert({"alertname": "Other"})))
    assert answer.status == 200


async def test_actions_filters(actuator_client, module_broker_url):
    client = await actuator_client(RULES, module_broker_url)
    for name in ("One", "Two", "Two"):
        await client.post("/webhook", json=notification(alert({"alertname": name})), headers=HEADERS)
    get = lambda **params: client.get("/actions", params=params, headers=HEADERS)  # noqa: E731
    assert len((await (await get(alertname="Two")).json())["actions"]) == 2
    assert len((await (await get(limit="1")).json())["actions"]) == 1
    assert len((await (await get(since="2000-01-01T00:00:00+00:00", outcome="no_match")).json())["actions"]) == 3
    for bad, fragment in (({"limit": "0"}, "limit"), ({"colour": "red"}, "unknown parameter 'colour'"),
                          ({"since": "soon"}, "since"), ({"notification": "x"}, "notification")):
        answer = await get(**bad)
        assert answer.status == 400 and fragment in (await answer.json())["error"]


async def test_status_page_escapes_user_data(actuator_client, module_broker_url):
    client = await actuator_client(RULES, module_broker_url)
    hostile = "<script>alert(1)</script>"
    await client.post("/webhook", json=notification(alert({"alertname": hostile})), headers=HEADERS)
    page = await (await client.get("/", headers=HEADERS)).text()
    assert "grow" in page and "no_match" in page
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def stored(client, notification_id: int) -> list[tuple]:
    """(rule, outcome, reason, workers) of a notification's decisions, as ``GET /actions`` reads
    them back from the audit log."""
    answer = await client.get("/actions", params={"notification": str(notification_id)}, headers=HEADERS)
    return [(r["rule"], r["outcome"], r["reason"], r["workers"]) for r in (await answer.json())["actions"]]


async def test_dry_run_sends_nothing(actuator_client, module_broker_url, worker, inspector):
    client = await actuator_client(RULES, module_broker_url)
    before = pool_size(inspector, WORKER)
    rehearsal = notification(alert({"alertname": "Rehearsal", "queue_name": "celery"}))
    answer = await client.post("/webhook", json=rehearsal, headers=HEADERS)
    action = (await answer.json())["alerts"][0]["actions"][0]
    assert (action["outcome"], action["workers"][0]["outcome"]) == ("dry_run", "dry_run")
    assert "rule 'rehearse-grow' has dry_run: true" in action["reason"]
    assert await stored(client, (await answer.json())["notification_id"]) == \
        [("rehearse-grow", "dry_run", action["reason"], action["workers"])]
    global_dry = await actuator_client(RULES, module_broker_url, dry_run=True)
    answer = await (await global_dry.post("/webhook", json=backlog("celery", 1), headers=HEADERS)).json()
    action = answer["alerts"][0]["actions"][0]
    assert action["reason"] == "dry run (--dry-run): nothing sent"
    assert await stored(global_dry, answer["notification_id"]) == \
        [("grow", "dry_run", action["reason"], action["workers"])]
    assert "celery_actuator_dry_run 1.0" in await (await global_dry.get("/metrics")).text()
    # One real grow by 1: prefork starts every pending process at once, so if a rehearsal's
    # grow by 4 had been sent, it would show together with this one.
    await client.post("/webhook", json=backlog("celery", 1), headers=HEADERS)
    after = wait_for(lambda: (size := pool_size(inspector, WORKER)) > before and size, what="the real grow")
    assert after == before + 1


async def test_inspecting_every_worker_stops_once_the_known_ones_answered(actuator_client, module_broker_url,
                                                                         worker):
    """With a 5 s inspection timeout, resolving "consumers of a queue" must not wait it out."""
    control = ControlSettings(broker_url=module_broker_url, inspect_timeout=5, discovery_interval=3600)
    client = await actuator_client(RULES, module_broker_url, control=control, dry_run=True)
    directory = client.app[SERVICES].resolver.directory
    # What the background refresh learns: the workers that answered a complete inspection.
    directory.replace({WORKER, "gone@contract"})
    started = time.monotonic()
    answer = await client.post("/webhook", json=backlog("celery", 1), headers=HEADERS)
    assert (await answer.json())["alerts"][0]["actions"][0]["workers"][0]["worker"] == WORKER
    # A known worker did not answer: that inspection waited its timeout, and forgot the worker.
    assert time.monotonic() - started >= 5 and directory.known == {WORKER}
    timings = []
    for _ in range(3):
        started = time.monotonic()
        answer = await client.post("/webhook", json=backlog("celery", 1), headers=HEADERS)
        timings.append(time.monotonic() - started)
        assert (await answer.json())["alerts"][0]["actions"][0]["workers"][0]["worker"] == WORKER
    assert max(timings) < 4, timings  # well under the 5 s timeout: not waited out, even on a loaded machine


@pytest.mark.parametrize(("outcome", "workers", "status"), [
    ("sent", ["ok"], 200),
    ("dry_run", ["dry_run"], 200),
    ("no_targets", [], 404),
    ("refused", ["refused"], 403),
    ("failed", ["error"], 403),
    ("failed", ["no_reply"], 502),
    ("partial", ["ok", "no_reply"], 502),
    ("partial", ["ok", "error"], 403),
    ("broker_unavailable", [], 503),
])
def test_flower_api_status_codes(outcome, workers, status):
    report = ActionReport(command="pool_grow", outcome=outcome,
                          workers=[WorkerResult(f"w{i}", o) for i, o in enumerate(workers)])
    assert api_status(report) == status


async def test_fuzzed_api_requests_never_get_500(actuator_client, module_broker_url):
    control = ControlSettings(broker_url=module_broker_url, inspect_timeout=0.1, reply_timeout=0.1,
                              discovery_interval=3600)
    client = await actuator_client(RULES, module_broker_url, control=control)
    rng = random.Random(5)
    odd = ["", "0", "-1", "1e400", "nan", "inf", "3.5", "ten", "a b", "é", "\x00", "<x>", "9" * 40, "200/m", "2"]
    paths = ["/api/worker/pool/grow/", "/api/worker/pool/shrink/", "/api/worker/pool/autoscale/",
             "/api/worker/queue/add-consumer/", "/api/worker/queue/cancel-consumer/",
             "/api/task/timeout/", "/api/task/rate-limit/"]
    names = ["celery@nowhere", "x%20y", "%00", "%3Cscript%3E", "a" * 300]
    keys = ["n", "min", "max", "queue", "soft", "hard", "ratelimit", "workername", "other"]
    statuses = set()
    for _ in range(120):
        params = {key: rng.choice(odd) for key in rng.sample(keys, rng.randint(0, 4))}
        path = rng.choice(paths) + rng.choice(names)
        answer = await client.post(path, params=params if rng.random() < 0.5 else None,
                                   data=None if rng.random() < 0.5 else params, headers=HEADERS)
        statuses.add(answer.status)
        # 502: a task endpoint without workername went to this module's worker, whose reply may
        # miss the 0.1 s reply timeout on a loaded machine. Never a 500.
        assert answer.status in (400, 403, 404, 502), (path, params, await answer.text())
    # Form bodies that cannot be read: a multipart body without its boundary, bytes not UTF-8.
    for content_type, body in (("multipart/form-data", b"--xx\r\n"), ("multipart/form-data; boundary=zz", b"junk"),
                               ("application/x-www-form-urlencoded", b"n=\xff")):
        answer = await client.post("/api/worker/pool/grow/celery@nowhere", data=body,
                                   headers={**HEADERS, "Content-Type": content_type})
        assert answer.status == 400 and "cannot read the" in (await answer.json())["error"], content_type
    for query in ({"limit": "1e400"}, {"since": "nan"}, {"since": "1e400"}, {"worker": "\x00"},
                  {"notification": "9" * 40}):
        assert (await client.get("/actions", params=query, headers=HEADERS)).status in (200, 400)
    assert {400, 404} <= statuses


async def test_concurrent_notifications_each_get_their_own_replies(actuator_client, module_broker_url, worker):
    rules = """
        rules:
          - name: limit
            match: {alertname: Limit}
            actions:
              - {command: rate_limit, workers: {name: "{{ labels.hostname }}"}, task: "{{ labels.task }}",
                 rate_limit: "{{ labels.rate }}"}
    """
    client = await actuator_client(rules, module_broker_url)
    tasks = ["demo.add", "demo.mul", "no.such.task"] * 8

    async def send(i: int, task: str):
        labels = {"alertname": "Limit", "hostname": WORKER, "task": task, "rate": f"{i + 1}/m"}
        answer = await client.post("/webhook", json=notification(alert(labels)), headers=HEADERS)
        return task, (await answer.json())["alerts"][0]["actions"][0]["workers"]

    results = await asyncio.gather(*(send(i, task) for i, task in enumerate(tasks)))
    for task, workers in results:
        expected = ("error", "unknown task") if task == "no.such.task" else ("ok", "new rate limit set successfully")
        assert [(w["worker"], w["outcome"], w["detail"]) for w in workers] == [(WORKER, *expected)]


async def test_a_worker_started_since_the_last_discovery_is_known_after_one_action(actuator_client, module_broker_url,
                                                                                 worker, start_workers):
    """Asking everyone stops once every known worker answered, so a newcomer slower than all of
    them is not among the replies: the question wakes the discovery, which finds it at once
    rather than after --discovery-interval (an hour here)."""
    control = ControlSettings(broker_url=module_broker_url, inspect_timeout=1, discovery_interval=3600)
    client = await actuator_client(RULES, module_broker_url, control=control, dry_run=True)
    directory = client.app[SERVICES].resolver.directory
    await wait_for_async(lambda: asyncio.sleep(0, directory.known == {WORKER}), timeout=10,
                         what="the first discovery")
    newcomer, = start_workers({"name": "newcomer@contract", "queues": ["newcomer-q"]})
    # Stopped while the action asks everyone, it is the slowest to answer whatever the machine's load.
    os.kill(newcomer.proc.pid, signal.SIGSTOP)
    try:
        answer = await client.post("/webhook", json=backlog("celery", 1), headers=HEADERS)
    finally:
        os.kill(newcomer.proc.pid, signal.SIGCONT)
    assert [w["worker"] for w in (await answer.json())["alerts"][0]["actions"][0]["workers"]] == [WORKER]
    await wait_for_async(lambda: asyncio.sleep(0, "newcomer@contract" in directory.known), timeout=5,
                         what="the discovery the action woke to find the newcomer")
