"""Who may do what over HTTP, in-process (aiohttp test server, real broker): roles, webhook
credentials kept apart, the console's session (cookie flags, CSRF), cross-site refusals, the
login throttle, the access log (never a secret), escaping, and the console's forms going through
the same guards and audit log as webhooks, proved by what a real worker reports."""
from __future__ import annotations

import base64
import json
import logging
import re

import bcrypt
import pytest

from actuator.roles import parse_role_map
from actuator.services import SERVICES
from actuator.sessions import COOKIE_NAME
from actuator.settings import AuthSettings, ThrottleSettings
from tests.actuator.payloads import alert, notification
from tests.support.inspection import pool_size
from tests.support.polling import wait_for

WORKER = "w1@access"
HOSTILE = "<script>alert(1)</script>"
PASSWORDS = {"alice": "alice-pw-8c1f", "bob": "bob-pw-77d2", "carol": "carol-pw-0a9e"}
HASHES = {user: bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)) for user, password in PASSWORDS.items()}
AM = ("alertmanager", "am-pw-5e21")
ADMIN = ("admin", "admin-pw-93bb")
RULES = """
    manual: {cooldown: 1h, max_pool: 3}
    limits: {max_actions_per_hour: 20}
    rules:
      - name: grow
        match: {alertname: Grow}
        cooldown: 10m
        max_actions_per_hour: 5
        actions: [{command: pool_grow, workers: {consuming: celery}, n: 1}]
"""
NO_MATCH = notification(alert({"alertname": "Nothing"}))


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def auth_settings(**overrides) -> AuthSettings:
    options = dict(password_users={user: HASHES[user] for user in ("alice", "bob")},
                   roles=parse_role_map("alice=operator"), webhook_basic_users=dict([AM]),
                   basic_users=dict([ADMIN]))
    return AuthSettings(**{**options, **overrides})


@pytest.fixture(scope="module")
def worker(start_workers):
    return start_workers({"name": WORKER, "queues": ["celery"], "concurrency": 2})[0]


@pytest.fixture
async def client(actuator_client, module_broker_url):
    return await actuator_client(RULES, module_broker_url, auth=auth_settings(), queues=("celery", HOSTILE))


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


async def log_in(client, user: str, password: str) -> str:
    """Sign in with the password form; the session's new CSRF token."""
    token = csrf_of(await (await client.get("/login")).text())
    answer = await client.post("/login", data={"username": user, "password": password, "csrf_token": token,
                                               "next": "/"}, allow_redirects=False)
    assert answer.status == 303, await answer.text()
    assert answer.headers["Location"] == "/"
    return csrf_of(await (await client.get("/")).text())


async def test_roles_decide_who_may_do_what(client):
    alice, bob = basic("alice", PASSWORDS["alice"]), basic("bob", PASSWORDS["bob"])
    am, admin = basic(*AM), basic(*ADMIN)
    statuses = {}
    for name, headers in (("alice", alice), ("bob", bob), ("alertmanager", am), ("admin", admin), ("nobody", {})):
        statuses[name] = [(await client.get("/actions", headers=headers)).status,
                          (await client.post("/webhook", json=NO_MATCH, headers=headers)).status,
                          (await client.get("/pause", headers=headers)).status]
    assert statuses == {"alice": [200, 403, 200], "bob": [200, 403, 200], "alertmanager": [403, 200, 403],
                        "admin": [200, 200, 200], "nobody": [401, 401, 401]}
    refused = await client.post("/pause", headers=bob)
    assert refused.status == 403
    assert (await refused.json())["error"] == "basic:bob has role viewer; write access needs operator"
    assert (await client.post("/pause", headers=am)).status == 403
    assert (await client.post("/api/worker/pool/grow/nobody@x?n=1", headers=bob)).status == 403
    paused = await client.post("/pause", headers=alice)
    assert paused.status == 200 and (await paused.json())["by"] == "basic:alice"
    assert (await client.post("/resume", headers=alice)).status == 200
    webhook = await client.get("/actions", params={"source": "webhook"}, headers=admin)
    assert {record["principal"] for record in (await webhook.json())["actions"]} == {"webhook-basic:alertmanager",
                                                                                      "basic:admin"}


async def test_protected_metrics_need_a_viewer(actuator_client, module_broker_url):
    client = await actuator_client(RULES, module_broker_url, auth=auth_settings(protect_metrics=True))
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=basic(*AM))).status == 403
    assert (await client.get("/metrics", headers=basic("bob", PASSWORDS["bob"]))).status == 200


async def test_people_without_a_role_are_refused(actuator_client, module_broker_url):
    settings = auth_settings(password_users={"carol": HASHES["carol"]}, roles=parse_role_map(""), default_role=None)
    client = await actuator_client(RULES, module_broker_url, auth=settings)
    answer = await client.get("/actions", headers=basic("carol", PASSWORDS["carol"]))
    assert answer.status == 403 and "has role no role" in (await answer.json())["error"]
    token = csrf_of(await (await client.get("/login")).text())
    page = await client.post("/login", data={"username": "carol", "password": PASSWORDS["carol"],
                                             "csrf_token": token}, allow_redirects=False)
    assert page.status == 403 and "carol has no role here" in await page.text()
    assert COOKIE_NAME not in {c.key for c in client.session.cookie_jar} or \
        (await client.get("/actions")).status == 401


async def test_console_session_cookie_and_csrf(client):
    assert (await client.get("/", headers={"Accept": "text/html"}, allow_redirects=False)).headers["Location"] == \
        "/login?next=/"
    token = csrf_of(await (await client.get("/login")).text())
    bad = await client.post("/login", data={"username": "alice", "password": PASSWORDS["alice"],
                                            "csrf_token": "forged"}, allow_redirects=False)
    assert bad.status == 403
    answer = await client.post("/login", data={"username": "alice", "password": PASSWORDS["alice"],
                                               "csrf_token": token, "next": "//evil.example/"}, allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/"
    cookie = answer.cookies[COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    assert cookie["max-age"] == str(8 * 3600)
    page = await (await client.get("/")).text()
    assert "basic:alice · operator+viewer" in page
    fresh = csrf_of(page)
    assert fresh != token, "a login starts a new session with a new CSRF token"

    assert (await client.post("/console/pause", data={"reason": "no token"})).status == 403
    assert (await client.post("/console/pause", data={"csrf_token": "wrong"})).status == 403
    cross = await client.post("/console/pause", data={"csrf_token": fresh}, headers={"Origin": "http://evil.example"})
    assert cross.status == 403 and "cross-site" in (await cross.json())["error"]
    assert (await client.post("/pause", json={})).status == 403, "the cookie alone is not enough for the JSON API"
    state = client.server.app[SERVICES].guards.state
    assert not (await state.pause_state()).paused
    done = await client.post("/console/pause", data={"csrf_token": fresh, "reason": "maintenance"},
                             allow_redirects=False)
    assert done.status == 303 and (await state.pause_state()).by == "basic:alice"
    page = await (await client.get("/")).text()
    assert "Actions paused" in page and "PAUSED" in page and "maintenance" in page
    await client.post("/console/resume", data={"csrf_token": fresh})
    assert not (await state.pause_state()).paused

    assert (await client.post("/logout", data={"csrf_token": fresh}, allow_redirects=False)).status == 303
    assert (await client.get("/actions")).status == 401


async def test_cross_site_requests_are_refused_whatever_the_credentials(client):
    admin = basic(*ADMIN)
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = await client.post("/pause", headers={**admin, **headers})
        assert answer.status == 403, headers
    same = await client.post("/resume", headers={**admin, "Origin": f"http://{client.host}:{client.port}"})
    assert same.status == 200


async def test_console_forms_need_the_csrf_token_whatever_the_credentials(client, actuator_client,
                                                                          module_broker_url):
    """A browser resends remembered basic credentials on its own, so they prove no intent."""
    refused = await client.post("/console/pause", data={"reason": "x"}, headers=basic(*ADMIN))
    assert refused.status == 403 and (await refused.json())["error"] == "missing or wrong CSRF token"
    open_client = await actuator_client(RULES, module_broker_url, auth=AuthSettings(enabled=False))
    assert (await open_client.post("/console/pause", data={})).status == 403
    token = csrf_of(await (await open_client.get("/")).text())
    assert (await open_client.post("/console/pause", data={"csrf_token": token}, allow_redirects=False)).status == 303


async def test_failed_logins_are_throttled(actuator_client, module_broker_url):
    settings = auth_settings(throttle=ThrottleSettings(burst=3, interval=60.0))
    client = await actuator_client(RULES, module_broker_url, auth=settings)
    for _ in range(3):
        assert (await client.get("/actions", headers=basic("alice", "guess"))).status == 401
    held = await client.get("/actions", headers=basic("alice", PASSWORDS["alice"]))
    assert held.status == 429 and 1 <= int(held.headers["Retry-After"]) <= 60
    token = csrf_of(await (await client.get("/login")).text())
    form = await client.post("/login", data={"username": "alice", "password": PASSWORDS["alice"], "csrf_token": token})
    assert form.status == 429 and "Too many failed attempts" in await form.text()
    # Bearer guesses from this address count too, and it is this address that is held now.
    assert (await client.get("/actions", headers={"Authorization": "Bearer guess"})).status == 429


async def test_every_auth_decision_is_logged_and_never_a_secret(client, caplog):
    caplog.set_level(logging.INFO, logger="actuator.access")
    await client.get("/actions", headers=basic(*ADMIN))
    await client.get("/actions", headers=basic("alice", "Wr0ng-Guess-1"))
    await client.post("/webhook", json=NO_MATCH, headers=basic("bob", PASSWORDS["bob"]))
    await client.get("/actions", headers={"Authorization": "Bearer tok-Secret-42"})
    csrf = await log_in(client, "alice", PASSWORDS["alice"])
    await client.post("/console/pause", data={"csrf_token": "Forged-Token-77"})
    await client.post("/console/resume", data={"csrf_token": csrf})
    log = caplog.text
    assert f"allow basic:admin (operator+viewer+webhook) GET /actions from 127.0.0.1" in log
    assert "deny user 'alice' GET /actions from 127.0.0.1: bad credentials: wrong user or password" in log
    assert "deny basic:bob (viewer) POST /webhook" in log
    assert "deny caller GET /actions from 127.0.0.1: bad credentials: unknown bearer token" in log
    assert "allow login basic:alice (operator+viewer)" in log
    assert "deny basic:alice POST /console/pause from 127.0.0.1: missing or wrong CSRF token" in log
    cookies = [c.value for c in client.session.cookie_jar]
    for secret in [*PASSWORDS.values(), ADMIN[1], "Wr0ng-Guess-1", "tok-Secret-42", "Forged-Token-77", csrf,
                   *cookies]:
        assert secret not in log, f"a secret leaked into the log: {secret[:6]}..."


async def test_user_strings_are_escaped_in_html_and_exact_in_json(client):
    await client.post("/webhook", json=notification(alert({"alertname": HOSTILE})), headers=basic(*AM))
    admin = basic(*ADMIN)
    page = await client.get("/", headers=admin)
    text = await page.text()
    assert HOSTILE not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
    state = await (await client.get("/console/state", headers=admin)).json()
    assert HOSTILE in [queue["name"] for queue in state["queues"]]
    assert any(a["alert"] and a["alert"]["alertname"] == HOSTILE for a in state["actions"])
    raw = await (await client.get("/api/queues", headers=admin)).text()
    assert json.loads(raw)[0]["name"] == HOSTILE or HOSTILE in [q["name"] for q in json.loads(raw)]


async def test_the_live_stream_sends_every_panel_escaped(client):
    await log_in(client, "bob", PASSWORDS["bob"])
    async with client.get("/console/events") as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        panels = {}
        while len(panels) < 5:
            line = (await stream.content.readline()).decode()
            if line.startswith("data: "):
                message = json.loads(line[len("data: "):])
                panels[message["panel"]] = message["html"]
    assert set(panels) == {"banner", "workers", "queues", "guards", "actions"}
    assert "&lt;script&gt;" in panels["queues"] and HOSTILE not in panels["queues"]
    assert "grow +1" not in panels["workers"], "a viewer gets no forms"


async def test_console_actions_take_the_manual_guards_and_the_audit_log(client, worker, inspector):
    before = pool_size(inspector, WORKER)
    csrf = await log_in(client, "alice", PASSWORDS["alice"])
    form = {"csrf_token": csrf, "command": "pool_grow", "worker": WORKER, "n": "5"}
    answer = await client.post("/console/action", data=form)
    page = await answer.text()
    assert "pool_grow n=5 on " in page and ": sent" in page
    wait_for(lambda: pool_size(inspector, WORKER) == 3, timeout=15, what=f"{WORKER}'s pool to reach max_pool 3")
    assert before == 2
    again = await (await client.post("/console/action", data=form)).text()
    assert "suppressed" in again and "max_pool is 3: grow by 5 clipped to 0" in again
    shrink = await (await client.post("/console/action", data={**form, "command": "pool_shrink", "n": "1"})).text()
    assert "suppressed" in shrink and "cooldown: manual actions acted on w1@access" in shrink
    flower = await client.post(f"/api/worker/pool/shrink/{WORKER}?n=1", headers=basic(*ADMIN))
    assert flower.status == 403 and "cooldown: manual actions" in (await flower.json())["error"]
    invalid = await (await client.post("/console/action", data={**form, "n": "0"})).text()
    assert "invalid" in invalid and "n: got &#39;0&#39;" in invalid
    records = (await (await client.get("/actions", params={"source": "console"})).json())["actions"]
    assert [(r["command"], r["outcome"], r["guards"], r["principal"]) for r in records] == [
        ("pool_grow", "invalid", [], "basic:alice"), ("pool_shrink", "suppressed", ["cooldown"], "basic:alice"),
        ("pool_grow", "suppressed", ["bounds"], "basic:alice"), ("pool_grow", "sent", [], "basic:alice")]
    (grown,) = records[-1]["workers"]
    assert grown["arguments"] == {"n": 1}
    assert grown["note"] == "n clipped from 5 to 1: pool has 2 processes, max_pool is 3"
    state = await (await client.get("/console/state")).json()
    manual = state["guards"]["manual"]
    assert [c["worker"] for c in manual["cooldowns"]] == [WORKER] and manual["cooldowns"][0]["seconds_left"] > 3500
    assert state["guards"]["global_budget"] == {"per_hour": 20, "used": 1, "left": 19}
    assert manual["budget"] == {"per_hour": None, "used": 1, "left": None}
    (shown,) = [w for w in state["workers"] if w["name"] == WORKER]
    assert shown["up"] and shown["queues"] == ["celery"] and shown["pool_size"] == 3
