"""People log in to the console at the REAL test OpenID provider (oidc-provider on Node): the
actuator runs as ``autopilot-actuator serve`` with its --oidc-* flags, a headless browser stand-in
walks the provider's login form. Flower's CVE-2022-30034 bypasses (the provider's hostile users)
are refused, as are unverified addresses, a tampered or replayed state, an ID token for another
nonce, and nothing secret ever reaches the actuator's log."""
from __future__ import annotations

import re
import urllib.parse

import pytest
import requests

from tests.actuator.conftest import write_rules
from tests.support.actuator_process import ActuatorProcess
from tests.support.oidc_login import HeadlessLogin, callback_params
from tests.support.oidc_provider import COMPANY_USERS, TRICKY_USERS, OidcProvider
from tests.support.ports import free_port

RULES = """
    rules:
      - {name: grow, match: {alertname: Grow}, actions: [{command: pool_grow, workers: all, n: 1}]}
"""
ALLOWED = r".*@company\.com"


def oidc_flags(provider: OidcProvider, client, secret_file) -> list[str]:
    return ["--oidc-discovery-url", provider.discovery_url, "--oidc-client-id", client.client_id,
            "--oidc-client-secret-file", str(secret_file), "--oidc-scopes", "openid email profile groups",
            "--oidc-label", "Company SSO", "--auth", ALLOWED, "--roles", "group:autopilot-operators=operator",
            # Every hostile user below is a refused login from 127.0.0.1: more than the default burst.
            "--auth-failure-burst", "50"]


@pytest.fixture(scope="module")
def actuator(oidc_provider, module_broker_url, tmp_path_factory):
    directory = tmp_path_factory.mktemp("oidc-actuator")
    port = free_port()
    client = oidc_provider.register_client([f"http://127.0.0.1:{port}/login/oidc/callback"], client_name="actuator")
    secret = directory / "oidc-secret"
    secret.write_text(client.client_secret + "\n")
    process = ActuatorProcess(write_rules(directory, RULES), module_broker_url,
                              *oidc_flags(oidc_provider, client, secret), port=port)
    process.client = client
    process.start()
    yield process
    process.stop()


def log_in(provider: OidcProvider, actuator: ActuatorProcess, user_id: str,
           next_path: str = "/console/state") -> tuple[HeadlessLogin, requests.Response]:
    browser = HeadlessLogin(provider)
    answer = browser.log_in(f"{actuator.url}/login/oidc?next={urllib.parse.quote(next_path)}",
                            provider.user(user_id))
    return browser, answer


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_the_login_page_offers_the_provider(actuator):
    page = requests.get(f"{actuator.url}/login", timeout=5)
    assert page.status_code == 200 and 'id="login-oidc"' in page.text and "Sign in with Company SSO" in page.text
    assert "password-login" not in page.text, "no password form without password users"
    bounce = requests.get(f"{actuator.url}/", headers={"Accept": "text/html"}, timeout=5, allow_redirects=False)
    assert bounce.status_code == 303 and bounce.headers["Location"] == "/login?next=/"


def test_an_operator_logs_in_and_acts_a_viewer_only_sees(oidc_provider, actuator):
    alice, answer = log_in(oidc_provider, actuator, "alice")
    assert answer.status_code == 200 and answer.url == f"{actuator.url}/console/state", answer.text
    page = alice.session.get(f"{actuator.url}/", timeout=10).text
    assert "oidc:alice@company.com · operator+viewer" in page
    paused = alice.session.post(f"{actuator.url}/console/pause", data={"csrf_token": csrf_of(page)}, timeout=10)
    assert paused.status_code == 200 and "Actions paused" in paused.text
    alice.session.post(f"{actuator.url}/console/resume", data={"csrf_token": csrf_of(page)}, timeout=10)

    bob, answer = log_in(oidc_provider, actuator, "bob", next_path="/")
    assert answer.status_code == 200 and "oidc:bob@company.com · viewer" in answer.text
    assert 'id="action-form"' not in answer.text
    refused = bob.session.post(f"{actuator.url}/console/pause", data={"csrf_token": csrf_of(answer.text)}, timeout=10)
    assert refused.status_code == 403 and "needs operator" in refused.json()["error"]
    assert bob.session.post(f"{actuator.url}/webhook", json={}, timeout=10).status_code == 403


@pytest.mark.parametrize("user_id", [u.id for u in TRICKY_USERS if u.id != "uppercase"])
def test_hostile_and_unverified_addresses_are_refused(oidc_provider, actuator, user_id):
    browser, answer = log_in(oidc_provider, actuator, user_id)
    assert answer.status_code == 403, answer.text
    assert "not allowed here" in answer.text and answer.url.startswith(f"{actuator.url}/login/oidc/callback")
    assert browser.session.get(f"{actuator.url}/console/state", timeout=5).status_code == 401


def test_an_upper_case_domain_is_the_same_domain(oidc_provider, actuator):
    browser, answer = log_in(oidc_provider, actuator, "uppercase")
    assert answer.status_code == 200
    page = browser.session.get(f"{actuator.url}/", timeout=10).text
    assert "oidc:ALICE@company.com · operator+viewer" in page


def test_the_state_must_be_this_browsers_and_is_used_once(oidc_provider, actuator):
    browser = HeadlessLogin(oidc_provider)
    callback = f"{actuator.url}/login/oidc/callback"
    redirect = browser.log_in(f"{actuator.url}/login/oidc", oidc_provider.user("alice"), stop_at=callback)
    params = callback_params(redirect)
    assert set(params) >= {"code", "state"}
    # Another browser (an attacker who got the link) cannot use it.
    stranger = requests.get(callback, params=params, timeout=10)
    assert stranger.status_code == 400 and "not started here" in stranger.text
    tampered = browser.session.get(callback, params={**params, "state": params["state"] + "x"}, timeout=10)
    assert tampered.status_code == 400
    # The tampered attempt used up the login in progress: even the genuine callback is refused now.
    assert browser.session.get(callback, params=params, timeout=10).status_code == 400
    assert browser.session.get(f"{actuator.url}/console/state", timeout=5).status_code == 401


def test_an_id_token_for_another_nonce_is_refused(oidc_provider, actuator):
    """An attacker who swaps the nonce in the authorization request (state and PKCE untouched)
    gets a code whose ID token carries the wrong nonce: the login fails on it alone."""
    browser = HeadlessLogin(oidc_provider)
    start = browser.session.get(f"{actuator.url}/login/oidc", allow_redirects=False, timeout=5)
    url = urllib.parse.urlsplit(start.headers["Location"])
    query = dict(urllib.parse.parse_qsl(url.query))
    swapped = url._replace(query=urllib.parse.urlencode({**query, "nonce": "attacker-chosen-nonce-0123456789"}))
    callback = f"{actuator.url}/login/oidc/callback"
    redirect = browser.log_in(urllib.parse.urlunsplit(swapped), oidc_provider.user("alice"), stop_at=callback)
    params = callback_params(redirect)
    assert params["state"] == query["state"], "the state is this browser's own: only the nonce differs"
    refused = browser.session.get(callback, params=params, timeout=10)
    assert refused.status_code == 403 and "Company SSO did not confirm who you are." in refused.text
    assert browser.session.get(f"{actuator.url}/console/state", timeout=5).status_code == 401
    assert "the ID token's nonce is not this login's" in actuator.log_text()


def test_the_provider_is_asked_for_pkce_state_and_nonce(oidc_provider, actuator):
    answer = requests.get(f"{actuator.url}/login/oidc", timeout=5, allow_redirects=False)
    assert answer.status_code == 302
    url = urllib.parse.urlsplit(answer.headers["Location"])
    query = dict(urllib.parse.parse_qsl(url.query))
    assert f"{url.scheme}://{url.netloc}{url.path}" == oidc_provider.endpoint("authorization_endpoint")
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32 and query["response_type"] == "code"
    assert query["redirect_uri"] == f"{actuator.url}/login/oidc/callback"
    cookie = answer.cookies.get("autopilot_session")
    assert cookie and query["state"] not in cookie, "the state travels encrypted in the session"


def test_the_log_holds_every_decision_and_no_secret(oidc_provider, actuator):
    browser = HeadlessLogin(oidc_provider)
    callback = f"{actuator.url}/login/oidc/callback"
    redirect = browser.log_in(f"{actuator.url}/login/oidc", oidc_provider.user("alice"), stop_at=callback)
    params = callback_params(redirect)
    assert browser.session.get(callback, params=params, timeout=10).status_code == 200
    log = actuator.log_text()
    assert "allow login oidc:alice@company.com (operator+viewer)" in log
    assert re.search(r"deny login at oidc .*: state does not match", log)
    assert re.search(r"deny login oidc subject 'query-suffix' .*is not a valid email address", log)
    cookies = [cookie.value for cookie in browser.session.cookies]
    secrets = [params["code"], params["state"], actuator.client.client_secret,
               *(user.password for user in COMPANY_USERS), *cookies]
    for secret in secrets:
        assert secret not in log, f"a secret leaked into the log: {secret[:6]}..."
