"""People log in with GitHub the way Flower offers it (OAuth 2, then the user's verified emails
from the API), against a small fake GitHub (the real one is unreachable from the tests); the
actuator runs as ``autopilot-actuator serve`` with its --github-* flags."""
from __future__ import annotations

import pytest
import requests

from tests.actuator.conftest import write_rules
from tests.support.actuator_process import ActuatorProcess
from tests.support.fake_github import FakeGithub, GithubAccount

RULES = """
    rules:
      - {name: grow, match: {alertname: Grow}, actions: [{command: pool_grow, workers: all, n: 1}]}
"""


@pytest.fixture(scope="module")
def github():
    with FakeGithub() as fake:
        yield fake


@pytest.fixture(scope="module")
def actuator(github, module_broker_url, tmp_path_factory):
    directory = tmp_path_factory.mktemp("github-actuator")
    secret = directory / "github-secret"
    secret.write_text(github.client_secret)
    process = ActuatorProcess(write_rules(directory, RULES), module_broker_url,
                              "--github-client-id", github.client_id, "--github-client-secret-file", str(secret),
                              "--github-url", github.base_url, "--github-api-url", github.base_url,
                              "--auth", r".*@company\.com", "--roles", "alice@company.com=operator",
                              "--auth-failure-burst", "50")
    process.start()
    yield process
    process.stop()


def log_in(github: FakeGithub, actuator: ActuatorProcess, *emails: tuple[str, bool, bool]) -> tuple[requests.Session,
                                                                                                   requests.Response]:
    github.signed_in = GithubAccount("octocat", emails)
    browser = requests.Session()
    return browser, browser.get(f"{actuator.url}/login/github?next=/console/state", timeout=10)


def test_a_verified_company_address_logs_in_with_its_roles(github, actuator):
    browser, answer = log_in(github, actuator, ("alice@company.com", True, True))
    assert answer.status_code == 200 and answer.url == f"{actuator.url}/console/state"
    page = browser.get(f"{actuator.url}/", timeout=10).text
    assert "github:alice@company.com · operator+viewer" in page
    exchange = github.exchanges[-1]
    assert exchange["code_verifier"] and exchange["redirect_uri"] == f"{actuator.url}/login/github/callback"


def test_the_first_verified_allowed_address_is_chosen(github, actuator):
    browser, answer = log_in(github, actuator, ("bob@evil.com", True, True), ("bob@company.com", False, True),
                             ("bob-unverified@company.com", False, False))
    assert answer.status_code == 200
    assert "github:bob@company.com · viewer" in browser.get(f"{actuator.url}/", timeout=10).text


@pytest.mark.parametrize("emails", [
    (("mallory@company.com", True, False),),
    (("attacker@evil.com?x@company.com", True, True),),
    (("attacker@evil.com#@company.com", True, True),),
    (("attacker@company.com.evil.com", True, True),),
    (("attacker@evil.com\n@company.com", True, True),),
    (("attacker@evil.company.com", True, True), ("attacker@evil.com", False, True)),
    (),
], ids=["unverified", "query-suffix", "fragment-suffix", "domain-suffix", "newline", "subdomain", "no-email"])
def test_unverified_and_hostile_addresses_are_refused(github, actuator, emails):
    browser, answer = log_in(github, actuator, *emails)
    assert answer.status_code == 403 and "not allowed here" in answer.text
    assert browser.get(f"{actuator.url}/console/state", timeout=10).status_code == 401


def test_a_code_github_refuses_is_no_login(github, actuator):
    browser = requests.Session()
    github.signed_in = GithubAccount("octocat", (("alice@company.com", True, True),))
    start = browser.get(f"{actuator.url}/login/github", timeout=10, allow_redirects=False)
    approved = browser.get(start.headers["Location"], timeout=10, allow_redirects=False)
    callback = approved.headers["Location"].replace("code=", "code=forged")
    answer = browser.get(callback, timeout=10)
    assert answer.status_code == 403 and "did not confirm who you are" in answer.text
    assert "GitHub gave no access token (bad_verification_code)" in actuator.log_text()
